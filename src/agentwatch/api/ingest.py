"""``POST /api/v1/ingest``: one event, a JSON array, or NDJSON (optionally gzip)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from agentwatch.api.bodies import read_events_body
from agentwatch.api.errors import InvalidRequest, TooLarge, Unavailable
from agentwatch.api.fastlane import fast_lane
from agentwatch.api.responses import JSON
from agentwatch.api.security import require
from agentwatch.events.codecs import Decoded
from agentwatch.events.codecs.framing import BodyError
from agentwatch.pipeline.pipeline import QueueFull, ShuttingDown

router = APIRouter(tags=["ingest"])


async def submit_decoded(request: Request, decoded: Decoded, source: str) -> dict[str, Any]:
    """Commit what decoded cleanly and report per-item rejections; shared by every ingest route."""
    aw = request.app.state.aw
    aw.metrics.count_intake(source, len(decoded.events) + len(decoded.rejected), len(decoded.rejected))
    try:
        # the request's audit row is committed with its events (see soc.audit.AuditTicket)
        outcome = await aw.pipeline.submit(decoded.events, getattr(request.state, "audit_ticket", None))
    except QueueFull:
        raise Unavailable(
            "pipeline: queue full, retry later", headers={"Retry-After": str(QueueFull.retry_after_s)}
        ) from None
    except ShuttingDown:
        raise Unavailable("pipeline: server is shutting down", headers={"Retry-After": "5"}) from None
    return {
        "accepted": len(decoded.events),
        "stored": outcome.stored,
        "duplicates": outcome.duplicates,
        "filtered": outcome.filtered,
        "rejected": len(decoded.rejected),
        "errors": [r.as_dict() for r in decoded.rejected[:1000]],
    }


INLINE_DECODE_BYTES = 64 * 1024  # larger bodies are decoded off the event loop
T = TypeVar("T")


async def decode_with(aw: Any, decode: Callable[..., T], body: bytes, *args: Any) -> T:
    """``decode(body, *args)``: a small body on the event loop, a larger one on the pipeline's
    work thread; a body the framing refuses answers 413 (too large) or 400."""
    try:
        if len(body) <= INLINE_DECODE_BYTES:
            return decode(body, *args)
        return await aw.pipeline.work.run(decode, body, *args)
    except BodyError as exc:
        if exc.status == 413:
            raise TooLarge(str(exc)) from None
        raise InvalidRequest(str(exc)) from None


@router.post("/api/v1/ingest", dependencies=[require("events:write", open_on_loopback=True)])
@fast_lane
async def ingest(request: Request) -> JSON:
    """Accepts OISP events; answers with accepted/rejected counts and why each rejection."""
    aw = request.app.state.aw
    body = await read_events_body(request, aw.settings.ingest.max_body_bytes)
    decoded = await decode_with(aw, aw.oisp.decode, body, request.headers.get("content-type", ""))
    return JSON(await submit_decoded(request, decoded, "oisp"))
