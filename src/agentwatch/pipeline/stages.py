"""Built-in pipeline stages. A stage takes a micro-batch and returns the events to keep.

Stages run in registration order in the pipeline's worker thread, before the
commit and the detectors. A stage that keeps derived rows in the store also defines
``in_commit(conn, fresh)``: it runs inside the commit's transaction with exactly the
events stored for the first time (see ``agentwatch.store.events.commit_batch``).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine

from agentwatch.events import entities
from agentwatch.events.ids import name_uuid_hex
from agentwatch.events.model import BY_TIME, Event
from agentwatch.pipeline.filters import RuntimeFilters
from agentwatch.store import processes as process_store

TRACE_NS = uuid.UUID("0b8f5a8e-37a4-4c55-8d5e-1d7c1b6f0a11")
_TRACE_NS_BYTES = TRACE_NS.bytes
TRACE_IDLE_S = 300.0
MAX_TRACKED = 100_000


class Stage(Protocol):
    name: str

    def process(self, batch: list[Event]) -> list[Event]: ...


class EntityStage:
    """Derives the entities each event names (``Event.entities``)."""

    name = "entities"

    def process(self, batch: list[Event]) -> list[Event]:
        for e in batch:
            if not e.entities:
                e.entities = entities.derive(e)
        return batch


class ProcessFilterStage:
    """Drops events of processes outside the runtime filter while it is enabled."""

    name = "process_filter"

    def __init__(self, filters: RuntimeFilters) -> None:
        self.filters = filters

    def process(self, batch: list[Event]) -> list[Event]:
        self.filters.refresh()  # a change made through another node lands within its reload time
        if not self.filters.enabled:
            return batch
        return [e for e in batch if self.filters.admits(e)]


def _trace_id(*parts: object) -> str:
    return name_uuid_hex(_TRACE_NS_BYTES, "\x1f".join([str(p) for p in parts]))


def _process_key(e: Event) -> tuple[str, int] | None:
    """The key of the event's process row, ``(host, pid)``, which also keys its live trace; None
    without a pid the processes table can hold."""
    pid = e.pid
    return None if pid is None else (process_store.host_of(e), pid)


class TraceStage:
    """Assigns ``Event.trace_id``.

    In order: the event's own W3C ``trace_context``; its agent session; its
    process, where a process inherits the live trace of its parent (lineage) and
    a process trace closes after 300 s without events (event time); finally the
    LLM ``request_id`` or tool ``call_id`` that ties request and response.

    The live trace of each process is remembered here and kept in the store too
    (``processes.trace_id``, written in the transaction of the events that started it),
    and read back when the pipeline starts (``restore``): after a restart an active
    process goes on in its trace, and a child it starts joins that trace.
    """

    name = "traces"

    def __init__(self, idle_s: float = TRACE_IDLE_S) -> None:
        self.idle_s = idle_s
        # (host, pid) -> (trace, event time of its latest event, whether the store has that trace)
        self._live: OrderedDict[tuple[str, int], tuple[str, float, bool]] = OrderedDict()

    def restore(self, engine: Engine) -> None:
        """Read back the live traces of the processes seen last (on start)."""
        for host, pid, trace, last_seen in process_store.live_traces(engine, MAX_TRACKED):
            if (host, pid) not in self._live:
                self._live[(host, pid)] = (trace, last_seen, True)

    def _remember(self, key: tuple[str, int], trace: str, ts: float) -> None:
        old = self._live.get(key)
        self._live[key] = (trace, ts, old is not None and old[0] == trace and old[2])
        self._live.move_to_end(key)
        while len(self._live) > MAX_TRACKED:
            self._live.popitem(last=False)

    def _live_trace(self, key: tuple[str, int], ts: float) -> str | None:
        hit = self._live.get(key)
        if hit is not None and ts - hit[1] <= self.idle_s:
            return hit[0]
        return None

    def assign(self, e: Event) -> str | None:
        tc = e.body.get("trace_context")
        if isinstance(tc, dict) and isinstance(tc.get("trace_id"), str):
            return tc["trace_id"]
        if e.session_id:
            return _trace_id("session", e.session_id)
        key = _process_key(e)
        if key is not None:
            hostname, pid = key
            trace = self._live_trace(key, e.ts)
            if trace is None:
                ppid = e.process.get("ppid")
                if isinstance(ppid, int):
                    trace = self._live_trace((hostname, ppid), e.ts)
            if trace is None:
                trace = _trace_id("process", hostname, pid, e.ts)
            self._remember(key, trace, e.ts)
            return trace
        data = e.data
        for field in ("request_id", "call_id"):
            v = data.get(field)
            if isinstance(v, str) and v:
                return _trace_id(field, v)
        return None

    def process(self, batch: list[Event]) -> list[Event]:
        for e in sorted(batch, key=BY_TIME):
            if e.trace_id is None:
                e.trace_id = self.assign(e)
        return batch

    def in_commit(self, conn: Connection, fresh: list[Event]) -> Callable[[], None] | None:
        """Store the live trace of each process of ``fresh`` whose trace the store does not have
        yet (a new process, or a new trace after an idle one); marked stored once committed."""
        changed: dict[tuple[str, int], str] = {}
        for e in fresh:
            key = _process_key(e)
            hit = self._live.get(key) if key is not None else None
            if key is None or hit is None or hit[2] or key in changed:
                continue
            changed[key] = hit[0]
        if not changed:
            return None
        process_store.set_traces(conn, changed)

        def stored() -> None:
            for key, trace in changed.items():
                hit = self._live.get(key)
                if hit is not None and hit[0] == trace:
                    self._live[key] = (trace, hit[1], True)

        return stored


def run_stages(stages: Sequence[Stage], batch: list[Event]) -> list[Event]:
    for stage in stages:
        batch = stage.process(batch)
        if not batch:
            break
    return batch
