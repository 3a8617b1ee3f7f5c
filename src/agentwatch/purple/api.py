"""``/api/v1/purple-team`` (AiSOC's Purple Team routes): the atomic-test catalogue, executions
of its tests through the real pipeline, ATT&CK coverage by test verdicts, and coverage drift.

Reads need ``rules:read``; running a test and taking a snapshot need ``purple:run``. The
tabletop routes are in :mod:`agentwatch.purple.tabletop_api`.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, InvalidRequest, NotFound, Unavailable
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import printable_name
from agentwatch.purple import coverage, drift, store
from agentwatch.purple.catalog import TEST_ID, catalog
from agentwatch.purple.executions import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, Busy, executions_of

router = APIRouter(prefix="/api/v1/purple-team", tags=["purple-team"])

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BODY_BYTES = 4 * 1024
TECHNIQUE = r"^[Tt][0-9]{4}(\.[0-9]{3})?$"
TACTIC = r"^[a-z-]{3,32}$"


def _uuid(value: str, field: str) -> None:
    if UUID_RE.fullmatch(value) is None:
        raise InvalidRequest(f"{field}: must be a UUID (lower-case hex)")


def _detection(request: Request) -> Any:
    comp = request.app.state.aw.components.get("detection")
    if comp is None:
        raise Unavailable("detection: the detection engine is not running")
    return comp.engine


def _rules(request: Request) -> list[Any]:
    """The loaded rules (in a worker thread: the first call may load them)."""
    return _detection(request).rules()  # type: ignore[no-any-return]


@router.get(
    "/atomic-tests",
    dependencies=[require("rules:read"), only_query("technique", "tactic")],
)
async def atomic_tests(
    request: Request,
    technique: Annotated[str | None, Query(pattern=TECHNIQUE, description="e.g. T1059 (sub-techniques too)")] = None,
    tactic: Annotated[str | None, Query(pattern=TACTIC, description="ATT&CK short name, e.g. execution")] = None,
) -> dict[str, Any]:
    """The catalogue, each test with its latest verdict (null when it never ran)."""
    latest = await run_in_threadpool(store.latest_by_test, request.app.state.aw.engine)
    wanted = technique.upper() if technique else None
    tests = []
    for test in catalog().values():
        if wanted and not any(t == wanted or t.startswith(wanted + ".") for t in test.techniques):
            continue
        if tactic and tactic not in test.tactics:
            continue
        tests.append({**test.as_json(), "latest": latest.get(test.id)})
    return {"tests": tests, "total": len(tests), "sources": ["agentwatch"]}


class ExecutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    test_id: str = Field(min_length=1, max_length=32, description="an atomic test id, e.g. AW-AT-001")
    timeout_s: float = Field(
        DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S, description="how long to wait for the expected alerts"
    )


@router.post(
    "/executions",
    status_code=202,
    dependencies=[require("purple:run"), only_query()],
    openapi_extra=json_body_doc(ExecutionIn),
)
async def run_test(request: Request) -> dict[str, Any]:
    """Start a run of one test (202, ``running``); GET it until its status is final."""
    body = await read_model(request, ExecutionIn, BODY_BYTES)
    if TEST_ID.fullmatch(body.test_id) is None or body.test_id not in catalog():
        raise InvalidRequest(f"test_id: no atomic test {body.test_id!r} (see GET /api/v1/purple-team/atomic-tests)")
    aw = request.app.state.aw
    _detection(request)  # refused at once when nothing would detect the events
    runs = executions_of(aw)
    if runs is None:
        raise Unavailable("purple: executions are not running on this server")
    try:
        return await runs.launch(catalog()[body.test_id], body.timeout_s, principal_name(request, "anonymous"))
    except Busy as exc:
        raise ApiError(str(exc), status=429, headers={"Retry-After": "5"}) from None


@router.get(
    "/executions",
    dependencies=[require("rules:read"), only_query("test_id", "status", "limit", "cursor")],
)
async def list_executions(
    request: Request,
    test_id: Annotated[str | None, Query(pattern=r"^AW-AT-[0-9]{3}$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(running|passed|failed|cancelled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> dict[str, Any]:
    """Executions newest first; ``next_cursor`` goes on from the last one."""
    at = keyset_position(cursor, 36)
    q = store.ExecutionQuery(test_id=test_id, status=status, limit=limit, cursor=at)
    rows, total, nxt = await run_in_threadpool(store.search, request.app.state.aw.engine, q)
    return {"executions": rows, "total": total, "next_cursor": nxt}


@router.get("/executions/{execution_id}", dependencies=[require("rules:read"), only_query()])
async def get_execution(request: Request, execution_id: str) -> dict[str, Any]:
    _uuid(execution_id, "execution_id")
    doc = await run_in_threadpool(store.get, request.app.state.aw.engine, execution_id)
    if doc is None:
        raise NotFound("execution not found", {"execution_id": execution_id})
    return doc


@router.delete("/executions/{execution_id}", dependencies=[require("purple:run"), only_query()], response_model=None)
async def cancel_or_delete(request: Request, execution_id: str) -> Any:
    """A running execution is cancelled (200 with it); a finished one is deleted (204). One
    that reached its verdict while the cancel was on its way is kept (200 with its verdict)."""
    _uuid(execution_id, "execution_id")
    asked = time.time()
    aw = request.app.state.aw
    runs = executions_of(aw)
    if runs is not None and await runs.cancel(execution_id):
        return await run_in_threadpool(store.get, aw.engine, execution_id)
    if await run_in_threadpool(store.remove, aw.engine, execution_id, asked):
        return Response(status_code=204)
    doc = await run_in_threadpool(store.get, aw.engine, execution_id)
    if doc is not None and doc["status"] != store.RUNNING:
        return doc
    raise NotFound("execution not found", {"execution_id": execution_id})


@router.get("/coverage", dependencies=[require("rules:read"), only_query()])
async def purple_coverage(request: Request) -> dict[str, Any]:
    """Per ATT&CK technique of the catalogue: its tests, their latest verdicts, its enabled rules."""
    rules = await run_in_threadpool(_rules, request)
    latest = await run_in_threadpool(store.latest_by_test, request.app.state.aw.engine)
    return coverage.build(catalog().values(), latest, rules)


def _no_blank(value: str) -> str:
    printable_name(value)
    return value


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Annotated[str, Field(max_length=128), AfterValidator(_no_blank)] = ""


@router.post(
    "/drift/snapshot",
    status_code=201,
    dependencies=[require("purple:run"), only_query()],
    openapi_extra=json_body_doc(SnapshotIn),
)
async def take_snapshot(request: Request) -> dict[str, Any]:
    """Store what the enabled rules cover now and the latest verdict of each test (body optional)."""
    body = await read_model(request, SnapshotIn, BODY_BYTES, optional=True)
    aw = request.app.state.aw
    rules = await run_in_threadpool(_rules, request)
    latest = await run_in_threadpool(store.latest_by_test, aw.engine)
    row = drift.snapshot_row(rules, catalog().values(), latest, principal_name(request, "anonymous"), body.label)
    await run_in_threadpool(store.add_snapshot, aw.engine, row, drift.KEEP)
    found = await run_in_threadpool(store.get_snapshot, aw.engine, row["id"])
    if found is None:  # pruned at once: only when KEEP snapshots were taken in the same instant
        raise NotFound("snapshot not found", {"snapshot_id": row["id"]})
    return found


@router.get("/drift/snapshots", dependencies=[require("rules:read"), only_query("limit")])
async def list_snapshots(request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    """Snapshots newest first."""
    rows, total = await run_in_threadpool(store.list_snapshots, request.app.state.aw.engine, limit)
    return {"snapshots": rows, "total": total}


@router.get("/drift/diff", dependencies=[require("rules:read"), only_query("from", "to")])
async def drift_diff(
    request: Request,
    from_: Annotated[str | None, Query(alias="from", max_length=36, description="older snapshot id")] = None,
    to: Annotated[str | None, Query(max_length=36, description="newer snapshot id")] = None,
) -> dict[str, Any]:
    """Techniques added and dropped between two snapshots (default: the two newest)."""
    engine = request.app.state.aw.engine
    if (from_ is None) != (to is None):
        raise InvalidRequest("from: give both from and to, or neither (the two newest snapshots)")
    if from_ is None or to is None:
        newest = await run_in_threadpool(store.last_two, engine)
        if len(newest) < 2:
            raise NotFound("drift: fewer than two snapshots; take one with POST /api/v1/purple-team/drift/snapshot")
        return drift.diff(newest[1], newest[0])
    docs = []
    for field, value in (("from", from_), ("to", to)):
        _uuid(value, field)
        doc = await run_in_threadpool(store.get_snapshot, engine, value)
        if doc is None:
            raise NotFound(f"{field}: snapshot not found", {field: value})
        docs.append(doc)
    return drift.diff(docs[0], docs[1])
