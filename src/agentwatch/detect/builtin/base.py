"""What every built-in rule shares: identity, tags, a bounded map, finding construction."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, ClassVar, Generic, TypeVar

from agentwatch.detect.keys import bounded
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

V = TypeVar("V")
DETECTOR = "detection"


class Lru(Generic[V]):
    """A dict that forgets its least recently touched entries past ``cap`` (bounded state);
    keys are bounded in size too (``detect.keys.bounded``)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._d: OrderedDict[Hashable, V] = OrderedDict()
        self.evicted = 0

    def get(self, key: Hashable) -> V | None:
        key = bounded(key)
        value = self._d.get(key)
        if value is not None:
            self._d.move_to_end(key)
        return value

    def __contains__(self, key: Hashable) -> bool:
        return bounded(key) in self._d

    def put(self, key: Hashable, value: V) -> None:
        key = bounded(key)
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.cap:
            self._d.popitem(last=False)
            self.evicted += 1

    def __len__(self) -> int:
        return len(self._d)


class BuiltinRule:
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[int]
    tags: ClassVar[list[str]]
    description: ClassVar[str]
    stateful: ClassVar[bool] = True

    def observe(self, event: Event) -> list[Finding]:
        """Stateful path: update state with ``event`` and report what it completes."""
        return self.check(event)

    def check(self, event: Event) -> list[Finding]:
        """Stateless verdict on one event; rules that need history return nothing."""
        return []

    def state_size(self) -> int:
        return 0

    def finding(self, events: list[Event], message: str, *, dedup_key: str | None = None, **details: Any) -> Finding:
        last = events[-1]
        return Finding(
            detector=DETECTOR,
            rule_id=self.id,
            title=self.title,
            severity=self.severity,
            events=events,
            alert_type="builtin",
            message=message,
            tags=list(self.tags),
            dedup_key=dedup_key,
            session_id=last.session_id,
            ts=max(e.ts for e in events),
            details={"format": "builtin", **details},
        )


def slim(event: Event) -> Event:
    """What a finding needs of a remembered event (id, time, type, session, entities), without its
    payload: state kept for thousands of events must not hold thousands of prompts."""
    return Event(
        body={},
        event_id=event.event_id,
        event_type=event.event_type,
        ts=event.ts,
        received_at=event.received_at,
        source_format=event.source_format,
        session_id=event.session_id,
        agent=event.agent,
        severity=event.severity,
        entities=list(event.entities),
    )


def scope_of(event: Event) -> str:
    """Whose activity an event belongs to: the session, else agent, else host and process."""
    if event.session_id:
        return f"session:{event.session_id}"
    data_agent = event.data.get("agent")
    if isinstance(data_agent, dict) and isinstance(data_agent.get("session_id"), str):
        return f"session:{data_agent['session_id']}"
    if event.agent:
        return f"agent:{event.agent}"
    host = event.body.get("host")
    hostname = host.get("hostname") if isinstance(host, dict) else None
    return f"host:{hostname or '-'}:{event.process.get('pid', '-')}"


def host_of(event: Event) -> str:
    host = event.body.get("host")
    return str(host.get("hostname") or "-") if isinstance(host, dict) else "-"
