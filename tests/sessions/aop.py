"""Building AOP events for tests, in either payload dialect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 4, 3, 10, 0, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    """RFC 3339 time ``seconds`` after T0 (event time, not wall clock)."""
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ev(
    session: str,
    seq: int,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    at: float | None = None,
    agent: str = "agent-1",
    parent: str | None = None,
) -> dict[str, Any]:
    return {
        "spec": "aop/1.0",
        "session_id": session,
        "parent_session_id": parent,
        "agent_id": agent,
        "sequence": seq,
        "timestamp": stamp(seq if at is None else at),
        "type": kind,
        "payload": payload or {},
    }
