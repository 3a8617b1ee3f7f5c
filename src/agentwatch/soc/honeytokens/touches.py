"""A touch of a honeytoken: the alert it raises and the row that records it.

Every touch raises a ``honeytoken`` alert (rule ``AW-HONEYTOKEN``) through the alert recorder,
with one dedup key per token, so repeats of one token within the dedup window merge into one
alert (their ``count`` grows) whatever saw them. The alert and the touch row are written in
one transaction: the touch names its alert. Neither holds the token's value.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import Connection

from agentwatch.alerts.recorder import record_in
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.honeytokens import store

log = structlog.get_logger("agentwatch.honeytokens")

RULE_ID = "AW-HONEYTOKEN"
ALERT_TYPE = "honeytoken"
# unsecured credentials (T1552): something read a secret it had no business reading
TAGS = ["honeytoken", "attack.credential_access", "attack.t1552"]


def _text(value: Any, n: int = 256) -> str | None:
    return value[:n] if isinstance(value, str) and value else None


def finding(
    token: Any, severity: int, *, event: Event | None, ts: float, where: str, detail: dict[str, Any]
) -> Finding:
    """The finding of one touch of ``token`` (a stored token row)."""
    how = f"in {where} of event {event.event_id} ({event.event_type})" if event is not None else f"through {where}"
    return Finding(
        detector="honeytokens",
        rule_id=RULE_ID,
        title=f"Honeytoken touched: {token.name}",
        severity=severity,
        events=[event] if event is not None else [],
        alert_type=ALERT_TYPE,
        message=f"the {token.kind} honeytoken {token.name!r} ({token.hint}) was seen {how}"
        + (f"; it was planted in {token.location}" if token.location else ""),
        tags=list(TAGS),
        dedup_key=f"honeytoken:{token.id}",
        session_id=event.session_id if event is not None else None,
        ts=ts,
        details={"honeytoken": {"id": token.id, "name": token.name, "kind": token.kind}, "seen_in": where, **detail},
    )


def pipeline_row(token_id: str, event: Event, where: str) -> dict[str, Any]:
    host = event.body.get("host")
    return {
        "token_id": token_id,
        "ts": event.ts,
        "source": "pipeline",
        "event_id": event.event_id[:128],
        "event_type": event.event_type[:128],
        "location": where[:256],
        "client": None,
        "user_agent": None,
        "session_id": _text(event.session_id),
        "agent": _text(event.agent),
        "host": _text(host.get("hostname")) if isinstance(host, dict) else None,
    }


def track_row(token_id: str, ts: float, client: str, user_agent: str) -> dict[str, Any]:
    return {
        "token_id": token_id,
        "ts": ts,
        "source": "track",
        "event_id": None,
        "event_type": None,
        "location": "GET /api/v1/honeytokens/track",
        "client": client[:64] or None,
        "user_agent": user_agent[:256] or None,
        "session_id": None,
        "agent": None,
        "host": None,
    }


def record(conn: Connection, touches: list[tuple[Finding, dict[str, Any]]], window_s: float) -> None:
    """Store the alerts of ``touches`` and then their rows, in ``conn``'s transaction. An alert
    that cannot be stored there is left to the finding sink (``stored_as`` stays None) and its
    touch is kept without an alert id: the touch must not be lost with it."""
    findings = [f for f, _ in touches]
    try:
        with conn.begin_nested():
            record_in(conn, findings, window_s)
    except Exception:
        log.exception("honeytokens.alerts_failed", findings=len(findings))
        for f in findings:
            f.stored_as = None
    rows = [{**row, "alert_id": f.stored_as[0]["id"] if f.stored_as else None} for f, row in touches]
    store.add_touches(conn, rows)
