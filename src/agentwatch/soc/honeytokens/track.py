"""``GET /api/v1/honeytokens/track/{token_id}``: the one public route, what a tripped canary URL
calls (an agent fetching a URL it found in a document, a page loading an image).

What it gives away: nothing beyond what the canary URL itself carries. Every well-formed id
gets the same answer, an empty 204, whether a live token has it, a revoked one, or none; the
touch is looked up and recorded after the answer has been sent, and after a random pause
(:data:`JITTER_S`): recording a live touch costs the server a few milliseconds of work, which
would otherwise slow the client's very next request and tell a live id from an unknown one.
A malformed id (not 1 to 64 letters and digits) is a 400, which says nothing about any token.
The request body is never read; the query string is bounded and ignored, the user agent kept
to its first 256 characters. Only url tokens are tracked here (the random part
of another kind's value in this path records nothing).

Budgets: ``honeytokens.track_per_address`` requests per client address and
``honeytokens.track_total`` in all, per ``honeytokens.track_window_s`` (on the shared Redis
counters when the access layer has them); past either, 429 with ``Retry-After``. Loopback
clients are not exempt: this budget bounds the rows and alerts anyone on the network can make.
Past the total budget a live canary is still recorded: someone flooding the route from many
addresses to use it up must not be able to fetch a canary unseen. The answer is the same 429,
and the store is not asked: the id is looked up among the live tracking ids this node read
from the store at most ``honeytokens.refresh_s`` ago (:class:`LiveTrackIds`), so a flood of
unknown ids costs one set lookup each.
An IPv6 client is counted by its /64 network (one host commonly holds a whole /64, so a budget
per address would be no budget), an IPv4-mapped IPv6 one by its IPv4 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import threading
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import ApiError, InvalidRequest, error_body
from agentwatch.api.responses import JSON
from agentwatch.api.security import PUBLIC, require
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.auth.limits import MemoryCounter
from agentwatch.soc.honeytokens import store, touches
from agentwatch.soc.honeytokens.generate import digest
from agentwatch.soc.honeytokens.settings import HoneytokenSettings

log = structlog.get_logger("agentwatch.honeytokens")
router = APIRouter(prefix="/api/v1/honeytokens", tags=["honeytokens"])

TRACK_ID = re.compile(r"[A-Za-z0-9]{1,64}")
MAX_QUERY = 2048
JITTER_S = (0.05, 1.0)  # the pause before a touch is looked up, drawn anew for each request
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


def _counter(aw: Any) -> Any:
    """The access layer's counters (shared through Redis when configured), else this module's own."""
    auth = getattr(aw, "auth", None)
    found = getattr(auth, "counter", None)
    if found is not None:
        return found
    own = aw.__dict__.get("honeytoken_counter")
    if own is None:
        own = aw.honeytoken_counter = MemoryCounter(max_keys=10_000)
    return own


def budget_key(client: str) -> str:
    """What one per-address budget counts: the IPv4 address, or an IPv6 address's /64 network."""
    try:
        ip = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return client[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _limited(limit: int, window_s: int, retry_after: int) -> ApiError:
    return ApiError(
        f"rate limit: {limit} tracking requests per {window_s}s exceeded, retry later",
        status=429,
        code="RATE_LIMITED",
        headers={"Retry-After": str(retry_after)},
    )


async def _within_address_budget(aw: Any, client: str) -> None:
    """Raises the 429 of the client's per-address budget when it is used up."""
    cfg: HoneytokenSettings = aw.settings.honeytokens
    key = f"honeytrack:addr:{budget_key(client)}"
    decision = await _counter(aw).hit(key, cfg.track_per_address, cfg.track_window_s)
    if not decision.allowed:
        raise _limited(cfg.track_per_address, cfg.track_window_s, decision.retry_after())


async def _within_budget(aw: Any, client: str) -> None:
    """Raises the 429 of the per-address budget, or of the total one (see ``_over_total``)."""
    await _within_address_budget(aw, client)
    over = await _over_total(aw)
    if over is not None:
        raise over


async def _over_total(aw: Any) -> ApiError | None:
    """The 429 to answer when the budget of all clients is used up, else None."""
    cfg: HoneytokenSettings = aw.settings.honeytokens
    decision = await _counter(aw).hit("honeytrack:all", cfg.track_total, cfg.track_window_s)
    return None if decision.allowed else _limited(cfg.track_total, cfg.track_window_s, decision.retry_after())


class LiveTrackIds:
    """The digests of the live url tokens' tracking ids, read from the store at most every
    ``refresh_s`` (one small query; a token created on another node is known here within it)."""

    def __init__(self) -> None:
        self._digests: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._reading = threading.Lock()

    def has(self, engine: Any, refresh_s: float, track_digest: str) -> bool:
        """Blocking (a store read when the set is old): call it off the event loop."""
        now = time.monotonic()
        if now - self._read_at >= refresh_s and self._reading.acquire(blocking=False):
            try:  # one reader at a time; the others use the set they find
                with engine.connect() as conn:
                    self._digests = frozenset(store.live_track_digests(conn))
                self._read_at = now
            finally:
                self._reading.release()
        return track_digest in self._digests


def _live_ids(aw: Any) -> LiveTrackIds:
    found = aw.__dict__.get("honeytoken_live_track")
    if found is None:
        found = aw.honeytoken_live_track = LiveTrackIds()
    return found


def _record(aw: Any, track_id: str, client: str, user_agent: str, now: float) -> Finding | None:
    """Store the touch and its alert when a live url token has ``track_id``; its finding."""
    with aw.engine.begin() as conn:
        token = store.by_track_digest(conn, digest(track_id))
        if token is None:
            return None
        detail = {"client": client[:64], "user_agent": user_agent[:256]}
        f = touches.finding(
            token, aw.settings.honeytokens.severity, event=None, ts=now, where="the tracking URL", detail=detail
        )
        touches.record(conn, [(f, touches.track_row(token.id, now, client, user_agent))], aw.alerts.window_s)
    return f


def _record_if_live(aw: Any, track_id: str, client: str, user_agent: str, now: float) -> Finding | None:
    """``_record`` for an id among the live tracking ids this node knows; nothing else is looked up."""
    if not _live_ids(aw).has(aw.engine, aw.settings.honeytokens.refresh_s, digest(track_id)):
        return None
    return _record(aw, track_id, client, user_agent, now)


async def _touch(aw: Any, track_id: str, client: str, user_agent: str, now: float, known_only: bool = False) -> None:
    try:
        await asyncio.sleep(secrets.SystemRandom().uniform(*JITTER_S))
        record = _record_if_live if known_only else _record
        f = await run_in_threadpool(record, aw, track_id, client, user_agent, now)
        if f is not None:
            await aw.alerts.record([f])  # published and sent to the outputs (stored above)
    except Exception:
        log.exception("honeytokens.track_failed")


@router.get("/track/{token_id}", status_code=204, dependencies=[require(PUBLIC)], response_class=Response)
async def track(request: Request, token_id: str) -> Response:
    """Public: records a touch of the url honeytoken holding this tracking id and raises an
    alert; answers an empty 204 whatever the id (see the module docstring)."""
    if TRACK_ID.fullmatch(token_id) is None:
        raise InvalidRequest("token_id: must be 1 to 64 letters or digits")
    if len(request.scope.get("query_string", b"")) > MAX_QUERY:
        raise InvalidRequest(f"query: longer than {MAX_QUERY} bytes")
    aw = request.app.state.aw
    client = request.client.host if request.client is not None else ""
    await _within_address_budget(aw, client)
    over = await _over_total(aw)
    user_agent = request.headers.get("user-agent", "")[:256]
    task = BackgroundTask(_touch, aw, token_id, client, user_agent, time.time(), known_only=over is not None)
    if over is not None:  # the same 429 as ever, and a live canary recorded all the same
        return JSON(error_body(over.code, over.message), over.status, headers=over.headers, background=task)
    return Response(status_code=204, headers=HEADERS, background=task)
