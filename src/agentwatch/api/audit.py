"""``GET /api/v1/audit`` (filters, cursor pagination) and ``GET /api/v1/audit/verify``."""

from __future__ import annotations

import base64
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import InvalidRequest
from agentwatch.api.security import require
from agentwatch.events.model import EventError, parse_ts
from agentwatch.soc.audit import AuditLog

router = APIRouter(tags=["audit"])

MAX_SEQ = 2**63 - 1  # the audit_log.seq column is a BIGINT


def _time(value: str | None, field: str) -> float | None:
    """Epoch seconds or an RFC 3339 timestamp."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise InvalidRequest(f"{field}: must be a finite number of epoch seconds")
        return number
    try:
        return parse_ts(value, field)
    except EventError:
        raise InvalidRequest(f"{field}: must be epoch seconds or an RFC 3339 timestamp") from None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind != "audit" or not (seq.isascii() and seq.isdigit()) or int(seq) > MAX_SEQ:
            raise ValueError(kind)
        return int(seq)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor: not a cursor returned by this endpoint") from None


def _log(request: Request) -> AuditLog:
    return request.app.state.aw.audit


@router.get("/api/v1/audit", dependencies=[require("audit:read")])
def list_audit(
    request: Request,
    actor: Annotated[str | None, Query(max_length=320, description="actor id or name")] = None,
    action: Annotated[str | None, Query(max_length=128, description="exact action, or a prefix ending in *")] = None,
    since: Annotated[str | None, Query(max_length=64, description="epoch seconds or RFC 3339")] = None,
    until: Annotated[str | None, Query(max_length=64, description="epoch seconds or RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Audit entries, newest first; ``next_cursor`` is set while older entries remain."""
    before = decode_cursor(cursor) if cursor else None
    rows = _log(request).query(
        actor=actor,
        action=action,
        since=_time(since, "since"),
        until=_time(until, "until"),
        before_seq=before,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": rows, "next_cursor": encode_cursor(rows[-1]["seq"]) if more else None}


@router.get("/api/v1/audit/verify", dependencies=[require("audit:read")])
async def verify_audit(request: Request) -> dict[str, Any]:
    """Walk the hash chain; names the first changed or missing row."""
    result = await run_in_threadpool(_log(request).verify)
    return result.as_dict()
