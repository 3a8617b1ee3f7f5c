"""The pipeline detector finding live honeytokens in stored events.

A canary value in an ingested event means an agent read it or is sending it on: an LLM
request or response holding it, a tool call's arguments, a file written or read, an HTTP body,
a command line. The detector runs inside the commit storing the events (``in_commit``): the
touches and their alerts are committed with the events or not at all, and a resent event is
never counted twice. Each token is counted once per event. A token standing only in the system
prompt of an LLM request is where it was planted, not a touch (:func:`.scan.field_of`).

The needle index (:mod:`.scan`) lives in memory and is rebuilt when the tokens change: at
once on the node that changed them, and on the others when they next see the stored version
move (checked at most every ``honeytokens.refresh_s``). With no live token the detector
returns before looking at an event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine

from agentwatch.alerts.recorder import DEDUP_WINDOW_S
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.honeytokens import store, touches
from agentwatch.soc.honeytokens.scan import NeedleIndex, field_of
from agentwatch.soc.honeytokens.settings import HoneytokenSettings

log = structlog.get_logger("agentwatch.honeytokens")


class HoneytokenDetector:
    name = "honeytokens"

    def __init__(self, engine: Engine, settings: HoneytokenSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._index = NeedleIndex.of([])
        self._version: str | None = None
        self._checked_at = float("-inf")  # time.monotonic() of the last version check
        self._lock = threading.Lock()
        self._found: list[Finding] = []
        self.loaded = False

    # -- the index ---------------------------------------------------------------------
    def reload(self, conn: Connection | None = None) -> None:
        """Rebuild the index from the store now (through ``conn`` when given)."""
        if conn is None:
            with self.engine.connect() as own:
                self.reload(own)
            return
        with self._lock:
            self._version = store.version(conn)
            self._index = NeedleIndex.of(store.active_needles(conn))
            self._checked_at = time.monotonic()
            self.loaded = True
        log.info("honeytokens.index_loaded", needles=len(self._index))

    def index(self, conn: Connection) -> NeedleIndex:
        """The index, rebuilt first when the stored version moved since it was built."""
        if not self.loaded or time.monotonic() - self._checked_at >= self.settings.refresh_s:
            self._checked_at = time.monotonic()
            if not self.loaded or store.version(conn) != self._version:
                self.reload(conn)
        return self._index

    # -- matching ----------------------------------------------------------------------
    def hits(self, index: NeedleIndex, events: Sequence[Event]) -> list[tuple[Event, str, str]]:
        """(event, token id, needle) for each live token found in each event."""
        limit = self.settings.scan_bytes
        out: list[tuple[Event, str, str]] = []
        for event in events:
            text = event.body_json if event.body_json is not None else orjson.dumps(event.body)
            for token_id, needle in index.scan(text[:limit]).items():
                out.append((event, token_id, needle))
        return out

    def in_commit(self, conn: Connection, fresh: list[Event]) -> Callable[[], None] | None:
        """Find the live tokens in the events being stored for the first time and store their
        touches and alerts in the same transaction; returns what to do once it committed. A
        failure here is logged and costs the touches, never the batch's events."""
        if not self.settings.enabled:
            return None
        try:
            index = self.index(conn)
            if not len(index):
                return None
            found = self.hits(index, fresh)
            if not found:
                return None
            with conn.begin_nested():
                findings = self._store(conn, found)
        except Exception:
            log.exception("honeytokens.detector_failed", events=len(fresh))
            return None
        if not findings:
            return None

        def committed() -> None:
            self._found.extend(findings)

        return committed

    def _store(self, conn: Connection, found: list[tuple[Event, str, str]]) -> list[Finding]:
        tokens = store.names(conn, sorted({t for _, t, _ in found}))
        pairs: list[tuple[Finding, dict[str, Any]]] = []
        for event, token_id, needle in found:
            token = tokens.get(token_id)
            if token is None or token.status != "active":  # revoked by another node meanwhile
                continue
            where = field_of(event.body, needle)
            if where is None:  # only in the system prompt it was planted in
                continue
            detail = {"event_id": event.event_id, "event_type": event.event_type}
            f = touches.finding(token, self.settings.severity, event=event, ts=event.ts, where=where, detail=detail)
            pairs.append((f, touches.pipeline_row(token_id, event, where)))
        if pairs:
            touches.record(conn, pairs, DEDUP_WINDOW_S)
        return [f for f, _ in pairs]

    def detect(self, batch: Sequence[Event]) -> list[Finding]:
        """The findings of the batches committed since the last call (found in ``in_commit``)."""
        found, self._found = self._found, []
        return found


def detector_of(aw: Any) -> HoneytokenDetector:
    """The one detector of this agentwatch (the pipeline and the routes share it)."""
    found = aw.__dict__.get("honeytoken_detector")
    if found is None:
        found = aw.honeytoken_detector = HoneytokenDetector(aw.engine, aw.settings.honeytokens)
    return found
