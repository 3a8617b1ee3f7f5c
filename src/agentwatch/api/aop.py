"""The AOP collector API: ``/events``, ``/stream``, ``/sessions``, ``/health``.

Drop-in for agents built against the original collector (same paths and shapes),
with what it lacked: validation naming the field, idempotent ``(session_id,
sequence)``, a batch form, sessions ordered by activity with filters and paging,
subtree delete, SSE resume. Every AOP event goes through the shared pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from agentwatch.api.bodies import read_events_body
from agentwatch.api.errors import InvalidRequest, NotFound, TooLarge, Unavailable
from agentwatch.api.fastlane import fast_lane
from agentwatch.api.ingest import decode_with, submit_decoded
from agentwatch.api.query import only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import PUBLIC, require
from agentwatch.api.session_paths import session_path
from agentwatch.events.model import EventError, parse_ts
from agentwatch.pipeline.pipeline import NotSettled
from agentwatch.sessions import queries, stream
from agentwatch.sessions.cursor import BadCursor, decode_cursor
from agentwatch.sessions.derive import session_json
from agentwatch.sessions.wire import MAX_SEQUENCE, identifier

router = APIRouter(tags=["aop"])
SAFE_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
Status = Literal["running", "completed", "failed", "cancelled", "timeout"]


def _service(request: Request) -> Any:
    return request.app.state.aw.components["aop_sessions"]


# documented here: the fast-lane endpoint reads it from the matched path and validates it itself
SESSION_ID_PARAMETER = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _session_id(value: str, field: str = "id") -> str:
    try:
        return identifier(value, field)  # type: ignore[return-value]
    except EventError as exc:
        raise InvalidRequest(str(exc)) from None


@router.post("/events", dependencies=[require("events:write", open_on_loopback=True)])
@fast_lane
async def post_events(request: Request) -> dict[str, Any]:
    """One AOP event (answers ``{"ok": true}``), or a batch as a JSON array or NDJSON (per-item results)."""
    aw = request.app.state.aw
    settings = aw.settings.aop
    body = await read_events_body(request, settings.max_batch_bytes)
    decoded, is_batch = await decode_with(aw, aw.codecs["aop"].decode_items, body)
    if not is_batch:
        if decoded.rejected:
            r = decoded.rejected[0]
            raise InvalidRequest(f"{r.field}: {r.reason}", [{"field": r.field, "rule": r.reason}])
        result = await submit_decoded(request, decoded, "aop")
        event = decoded.events[0]
        return {"ok": True, "event_id": event.event_id, "duplicate": result["duplicates"] > 0}
    result = await submit_decoded(request, decoded, "aop")
    rejected = {r.index: r for r in decoded.rejected}
    total = len(decoded.events) + len(decoded.rejected)
    accepted = iter(decoded.events)
    items: list[dict[str, Any]] = []
    for i in range(total):
        if i in rejected:
            r = rejected[i]
            items.append({"index": i, "ok": False, "error": {"field": r.field, "rule": r.reason}})
        else:
            items.append({"index": i, "ok": True, "event_id": next(accepted).event_id})
    return {
        "ok": not decoded.rejected,
        "accepted": result["accepted"],
        "stored": result["stored"],
        "duplicates": result["duplicates"],
        "rejected": result["rejected"],
        "results": items,
    }


@router.get(
    "/stream", dependencies=[require("sessions:read"), only_query("session_id")], response_class=StreamingResponse
)
async def get_stream(
    request: Request,
    session_id: Annotated[str | None, Query(max_length=128)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=128)] = None,
) -> StreamingResponse:
    """Live AOP events and alerts as Server-Sent Events; resume with ``Last-Event-ID``."""
    aw = request.app.state.aw
    if session_id is not None:
        session_id = _session_id(session_id, "session_id")
    place = stream.stream_places(aw).take()
    if place is None:
        raise Unavailable("stream: too many live clients", headers={"Retry-After": "5"})
    body = stream.open_stream(aw, place, session_id=session_id, last_event_id=last_event_id or None, conn=request)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# Here, on /stream and on DELETE, a misspelt parameter (``?agnet=``, ``?sesion_id=``,
# ``?recusive=true``) is refused, not ignored: ignored, the answer would look filtered when it
# is not (or delete less than asked) with nothing to say so.
@router.get(
    "/sessions",
    dependencies=[
        require("sessions:read"),
        only_query("limit", "offset", "cursor", "status", "agent", "since", "parent"),
    ],
    response_class=JSON,
)
async def list_sessions(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
    status: Status | None = None,
    agent: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    parent: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> JSON:
    """Sessions, most recently active first; ``since`` is an RFC 3339 time of last activity.

    ``cursor`` pages on after the last session of the page before (keyset paging): a session
    that becomes active meanwhile moves to the top, and with ``offset`` that shifts every row
    under it, so a session that did not change could be skipped or listed twice."""
    aw = request.app.state.aw
    since_ts = None
    if since is not None:
        try:
            since_ts = parse_ts(since, "since")
        except EventError as exc:
            raise InvalidRequest(str(exc)) from None
    after = None
    if cursor is not None:
        if offset is not None:
            rule = "give one or the other, not both"
            raise InvalidRequest(
                f"cursor, offset: {rule} (cursor pages on from next_cursor, offset counts rows)",
                [{"field": "cursor", "rule": rule}, {"field": "offset", "rule": rule}],
            )
        try:
            after = decode_cursor(cursor)
        except BadCursor as exc:
            raise InvalidRequest(f"cursor: {exc}", [{"field": "cursor", "rule": str(exc)}]) from None
    start = offset or 0
    q = queries.SessionQuery(
        limit=limit, offset=start, status=status, agent=agent, since=since_ts, parent=parent, after=after
    )
    rows, total, next_cursor = await run_in_threadpool(queries.list_sessions, aw.engine, q)
    nxt = start + len(rows)
    return JSON(
        {
            "sessions": [session_json(r) for r in rows],
            "total": total,
            "limit": limit,
            # a cursor's page has no row number: it starts wherever that session now is
            "offset": None if after is not None else start,
            "next_offset": None if after is not None or nxt >= total else nxt,
            "next_cursor": next_cursor,
        }
    )


DETAIL_EVENTS_MAX = 10_000  # events in one answer of GET /sessions/{id}; page on with ?after=
EXPORT_PAGE = 5_000  # events read per query while an export streams


def _query_int(request: Request, name: str, *, low: int, high: int, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"{name}: must be an integer") from None
    if not low <= number <= high:
        raise InvalidRequest(f"{name}: must be between {low} and {high}")
    return number


def _detail(engine: Any, session_id: str, after: int, limit: int) -> bytes | None:
    with engine.connect() as conn:  # one connection for the four reads
        row = queries.get_session(conn, session_id)
        if row is None:
            return None
        evs = queries.raw_events(conn, session_id, after=after, limit=limit + 1)
        kids = queries.children(conn, session_id)
        # the list stops at MAX_CHILDREN; the count does not
        kid_count = queries.count_children(conn, session_id) if len(kids) >= queries.MAX_CHILDREN else len(kids)
        alerts = queries.session_alerts(conn, session_id)
    more = len(evs) > limit
    evs = evs[:limit]
    head = orjson.dumps(
        {
            "session": session_json(row, children=kid_count),
            "alerts": alerts,
            "children": [session_json(k) for k in kids],
            "next_after": evs[-1][0] if more else None,
        }
    )
    events = b"[" + b",".join(queries.one_line(raw) for _seq, raw in evs) + b"]"
    return head[:-1] + b',"events":' + events + b"}"


async def _detail_response(request: Request, sid: str) -> Response:
    unknown = set(request.query_params) - {"after", "limit"}
    if unknown:
        name = sorted(unknown)[0][:64]
        raise InvalidRequest(f"{name}: unknown query parameter (known: after, limit)")
    after = _query_int(request, "after", low=-1, high=MAX_SEQUENCE, default=-1)
    limit = _query_int(request, "limit", low=1, high=DETAIL_EVENTS_MAX, default=DETAIL_EVENTS_MAX)
    body = await run_in_threadpool(_detail, request.app.state.aw.engine, sid, after, limit)
    if body is None:
        raise NotFound(f"session {sid!r} not found")
    return Response(body, media_type="application/json")


def content_disposition(session_id: str) -> str:
    """An attachment header safe for any id: an ASCII fallback name and the exact name (RFC 6266)."""
    ascii_name = "".join(c if c in SAFE_NAME else "_" for c in session_id)
    exact = quote(f"session-{session_id}.jsonl", safe="")
    return f"attachment; filename=\"session-{ascii_name}.jsonl\"; filename*=UTF-8''{exact}"


def _export_pages(engine: Any, session_id: str, first: list[tuple[int, bytes]]) -> Iterator[bytes]:
    """The export's bytes, one page of events at a time (a long session is never held whole)."""
    page = first
    while page:
        yield b"".join(queries.one_line(raw) + b"\n" for _seq, raw in page)
        if len(page) < EXPORT_PAGE:
            return
        page = queries.raw_events(engine, session_id, after=page[-1][0], limit=EXPORT_PAGE)


def _export_start(engine: Any, session_id: str) -> list[tuple[int, bytes]] | None:
    first = queries.raw_events(engine, session_id, limit=EXPORT_PAGE)
    if not first and not queries.known(engine, session_id):
        return None
    return first


async def _export_response(request: Request, sid: str) -> Response:
    engine = request.app.state.aw.engine
    first = await run_in_threadpool(_export_start, engine, sid)
    if first is None:
        raise NotFound(f"session {sid!r} not found")
    return StreamingResponse(
        _export_pages(engine, sid, first),  # a plain iterator: Starlette reads it in a worker thread
        media_type="application/x-ndjson",
        headers={"Content-Disposition": content_disposition(sid), "X-Content-Type-Options": "nosniff"},
    )


async def _session_view(request: Request) -> Response:
    target = session_path(request.scope)
    if target.view == "export":
        return await _export_response(request, target.session_id)
    return await _detail_response(request, target.session_id)


# A session id may hold "/" (sent as %2F): both GET routes read their target from the raw
# path (``api.session_paths``), so whichever route matched, the right view answers.
@router.get("/sessions/{session_id}/export", dependencies=[require("sessions:read")], response_class=Response)
async def export_session(request: Request, session_id: str) -> Response:
    """The session's events exactly as sent, one per line (NDJSON), as a file download."""
    return await _session_view(request)


@router.get(
    "/sessions/{session_id:path}",
    dependencies=[require("sessions:read")],
    response_class=Response,
    openapi_extra={
        "parameters": [
            SESSION_ID_PARAMETER,
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": -1}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": DETAIL_EVENTS_MAX}},
        ]
    },
)
@fast_lane
async def get_session(request: Request) -> Response:
    """The session, its events as sent (in sequence order; ``after``/``limit`` page through a
    long session), its alerts and its child sessions."""
    return await _session_view(request)


@router.delete(
    "/sessions/{session_id:path}",
    dependencies=[require("sessions:write"), only_query("recursive")],
    openapi_extra={"parameters": [SESSION_ID_PARAMETER]},
)
async def delete_session(request: Request, recursive: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """Delete a session with its events and alerts; ``?recursive=true`` also deletes its descendants."""
    target = session_path(request.scope)
    if target.view != "detail":
        raise NotFound(f"no route for {request.url.path!r}")
    try:
        result = await _service(request).delete(target.session_id, recursive)
    except NotSettled as exc:
        retry = {"Retry-After": str(exc.retry_after_s)}
        raise Unavailable(f"session {target.session_id!r}: {exc}", headers=retry) from None
    except queries.TreeTooLarge as exc:
        raise TooLarge(str(exc)) from None
    if result is None:
        raise NotFound(f"session {target.session_id!r} not found")
    return result


@router.get("/health", dependencies=[require(PUBLIC)])
async def health(request: Request) -> dict[str, Any]:
    """Liveness of the collector: the real version and the number of ``/stream`` subscribers."""
    aw = request.app.state.aw
    return {"ok": True, "version": aw.version, "subscribers": stream.stream_places(aw).taken}
