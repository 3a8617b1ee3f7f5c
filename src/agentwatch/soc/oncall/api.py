"""``/api/v1/oncall``: on-call rotations (AiSOC's responder routes) and who is on call.

``whoison`` answers for every rotation, or the one ``?rotation=`` names (by id or name), at
the current time or ``?at=``: the member on call with since and until (the next handoff),
and the next one. See :mod:`agentwatch.soc.oncall.schedule` for the exact rules.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.soc.oncall import store
from agentwatch.soc.oncall.schedule import Segment, from_us, on_call
from agentwatch.soc.oncall.spec import RotationIn, offset_minutes, parse_instant, stored
from agentwatch.soc.oncall.spec import rotation as schedule_of

router = APIRouter(prefix="/api/v1/oncall", tags=["oncall"])
ROTATION_ID = re.compile(r"[0-9a-f-]{36}")
BODY_BYTES = 64 * 1024


def _check_id(rotation_id: str) -> None:
    if ROTATION_ID.fullmatch(rotation_id) is None:
        raise InvalidRequest("rotation_id: must be a UUID")


def _name_taken(name: str) -> Conflict:
    return Conflict(f"name: a rotation named {name!r} exists already", {"name": name})


@router.get("/rotations", dependencies=[require("alerts:read"), only_query("limit", "cursor")])
async def list_rotations(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Rotations, oldest first; ``next_cursor`` goes on from the last one."""
    at = keyset_position(cursor, 36)
    rows, nxt = await run_in_threadpool(store.page, request.app.state.aw.engine, limit, at)
    return {"rotations": rows, "next_cursor": nxt}


@router.post(
    "/rotations",
    status_code=201,
    dependencies=[require("oncall:write"), only_query()],
    openapi_extra=json_body_doc(RotationIn),
)
async def create_rotation(request: Request) -> dict[str, Any]:
    body = await read_model(request, RotationIn, BODY_BYTES)
    try:
        return await run_in_threadpool(
            store.create, request.app.state.aw.engine, body.name, stored(body), principal_name(request)
        )
    except store.NameTaken:
        raise _name_taken(body.name) from None
    except store.TooMany:
        raise ApiError(
            f"rotations: at most {store.MAX_ROTATIONS:,} rotations are kept", status=507, code="INSUFFICIENT_STORAGE"
        ) from None


@router.get("/rotations/{rotation_id}", dependencies=[require("alerts:read"), only_query()])
async def get_rotation(request: Request, rotation_id: str) -> dict[str, Any]:
    _check_id(rotation_id)
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, rotation_id)
    if found is None:
        raise NotFound("rotation not found", {"rotation_id": rotation_id})
    return found


@router.put(
    "/rotations/{rotation_id}",
    dependencies=[require("oncall:write"), only_query()],
    openapi_extra=json_body_doc(RotationIn),
)
async def put_rotation(request: Request, rotation_id: str) -> dict[str, Any]:
    """Replace the rotation (the whole document, as ``POST`` takes it)."""
    body = await read_model(request, RotationIn, BODY_BYTES)
    _check_id(rotation_id)
    try:
        found = await run_in_threadpool(
            store.replace, request.app.state.aw.engine, rotation_id, body.name, stored(body)
        )
    except store.NameTaken:
        raise _name_taken(body.name) from None
    if found is None:
        raise NotFound("rotation not found", {"rotation_id": rotation_id})
    return found


@router.delete("/rotations/{rotation_id}", status_code=204, dependencies=[require("oncall:write"), only_query()])
async def delete_rotation(request: Request, rotation_id: str) -> Response:
    _check_id(rotation_id)
    if not await run_in_threadpool(store.remove, request.app.state.aw.engine, rotation_id):
        raise NotFound("rotation not found", {"rotation_id": rotation_id})
    return Response(status_code=204)


def _segment(seg: Segment, offset: int) -> dict[str, Any] | None:
    if seg.member is None:
        return None
    return {
        "member": seg.member,
        "since": from_us(seg.since, offset) if seg.since is not None else None,
        "until": from_us(seg.until, offset),
        "override": seg.override,
    }


@router.get("/whoison", dependencies=[require("alerts:read"), only_query("rotation", "at")])
async def who_is_on(
    request: Request,
    rotation: Annotated[str | None, Query(min_length=1, max_length=128, description="a rotation's id or name")] = None,
    at: Annotated[str | None, Query(min_length=1, max_length=64, description="RFC 3339; now when left out")] = None,
) -> dict[str, Any]:
    """Who is on call (``null``: nobody, e.g. before the rotation starts), since and until
    when, and who is next, for each rotation."""
    if at is not None:
        try:
            t = parse_instant(at, "at")
        except ValueError as exc:
            raise InvalidRequest(f"at: {exc}") from None
    else:
        t = int(time.time() * 1_000_000)
    found = await run_in_threadpool(store.schedules, request.app.state.aw.engine, rotation)
    if found is None:
        raise NotFound("rotation not found", {"rotation": rotation})
    out = []
    for rid, name, spec in found:
        off = offset_minutes(spec["utc_offset"])
        now_seg, next_seg = on_call(schedule_of(spec), t)
        out.append(
            {
                "rotation_id": rid,
                "rotation": name,
                "at": from_us(t, off),
                "on_call": _segment(now_seg, off),
                "next": _segment(next_seg, off),
            }
        )
    return {"whoison": out}
