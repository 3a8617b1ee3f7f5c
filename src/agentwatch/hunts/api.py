"""``/api/v1/hunts``: AiSOC's hunt-as-code routes: the loaded definitions (and the files that
did not load), one hunt, the results of its latest run or of an older one, and a run on demand.

Not to be confused with ``POST /api/v1/hunt`` (Seerflow's hunt asked in words, ``api.v1_hunt``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import Conflict, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.hunts import store
from agentwatch.hunts.definition import HUNT_ID, Hunt
from agentwatch.hunts.schedule import Busy, schedule_of

router = APIRouter(prefix="/api/v1/hunts", tags=["hunts"])

HUNT_RE = re.compile(HUNT_ID)
RUN_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# what a run answers a caller who may run hunts but not read events and alerts: no matches
SUMMARY = frozenset(
    ("id", "hunt_id", "definition_hash", "trigger", "status", "started_at", "finished_at", "duration_ms")
    + ("query_total", "scanned", "matched", "alert_id", "error")
)
READ = require("events:read", also={"alerts:read": "a hunt's results name the alerts it raised"})


def _hunt(request: Request, hunt_id: str) -> Hunt:
    hunt = schedule_of(request.app.state.aw).catalog.get(hunt_id) if HUNT_RE.match(hunt_id) else None
    if hunt is None:
        raise NotFound("hunt not loaded (no definition with this id in hunts.directory)", {"hunt_id": hunt_id[:64]})
    return hunt


def _summary(hunt: Hunt, last: dict[str, Any] | None) -> dict[str, Any]:
    d = hunt.definition
    return {
        "id": d.id,
        "title": d.title,
        "mitre": d.mitre,
        "schedule": d.as_json()["schedule"],
        "alert": d.alert is not None,
        "file": hunt.file,
        "definition_hash": hunt.digest,
        "last_run": last,
    }


@router.get("", dependencies=[READ, only_query()])
async def list_hunts(request: Request) -> dict[str, Any]:
    """Every loaded hunt (by id) with its last run, and every file that did not load (file, line, error)."""
    aw = request.app.state.aw
    catalog = schedule_of(aw).catalog
    hunts, errors = catalog.hunts, catalog.errors
    last = await run_in_threadpool(store.last_runs, aw.engine)
    return {
        "hunts": [_summary(h, last.get(k)) for k, h in sorted(hunts.items())],
        "errors": [e.as_json() for e in errors],
        "meta": {"total": len(hunts), "errors": len(errors)},
    }


@router.get("/{hunt_id}", dependencies=[READ, only_query()])
async def get_hunt(request: Request, hunt_id: str) -> dict[str, Any]:
    """The hunt's hypothesis, ATT&CK ids, indicators, query, window, schedule and alert, with its last run."""
    aw = request.app.state.aw
    hunt = _hunt(request, hunt_id)
    runs = await run_in_threadpool(store.history, aw.engine, hunt.definition.id, 1)
    return {
        **hunt.definition.as_json(),
        "file": hunt.file,
        "definition_hash": hunt.digest,
        "last_run": runs[0] if runs else None,
    }


@router.get("/{hunt_id}/results", dependencies=[READ, only_query("run")])
async def hunt_results(
    request: Request,
    hunt_id: str,
    run: Annotated[str | None, Query(pattern=RUN_ID, max_length=36, description="a run id from runs")] = None,
) -> dict[str, Any]:
    """The latest run's results (matched event ids, entities, indicator counts), or those of
    ``run``, and the hunt's kept runs (``hunts.history``), newest first."""
    aw = request.app.state.aw
    hunt = _hunt(request, hunt_id)
    found = await run_in_threadpool(store.get_run, aw.engine, hunt.definition.id, run)
    if found is None and run is not None:
        raise NotFound("run not found (older runs than hunts.history are deleted)", {"run": run})
    runs = await run_in_threadpool(store.history, aw.engine, hunt.definition.id, aw.settings.hunts.history)
    return {"hunt_id": hunt.definition.id, "run": found, "runs": runs}


@router.post("/{hunt_id}/run", dependencies=[require("rules:write"), only_query()])
async def run_hunt(request: Request, hunt_id: str) -> dict[str, Any]:
    """Run the hunt now; the stored run (its matches only to a caller with ``events:read`` and
    ``alerts:read``). 409 while another node runs it."""
    aw = request.app.state.aw
    hunt = _hunt(request, hunt_id)
    try:
        done = await schedule_of(aw).run(hunt, "manual")
    except Busy:
        raise Conflict("hunt is running on another node; try again once it finished", {"hunt_id": hunt_id}) from None
    caller = request.state.principal
    if done is not None and not (caller.can("events:read") and caller.can("alerts:read")):
        done = {k: v for k, v in done.items() if k in SUMMARY}  # the matches are the read routes'
    return {"run": done}
