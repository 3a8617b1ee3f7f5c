"""What stands between a proposal and the live rule set: who is asking, whether its logic
compiles, whether its current version passed an eval, and the one upload that makes it live.

Also the small per-node limit on replays (evals and baselines read up to
``proposals.max_window_events`` stored events each): past ``proposals.max_running_evals``
at once, a request is answered 429 instead of queueing work behind the others.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, Unavailable
from agentwatch.detect.engine import DetectionEngine, RuleConflict, SigmaUnavailable, StoreFull
from agentwatch.detect.proposals import store
from agentwatch.detect.proposals.bodies import MAX_LOGIC_BYTES
from agentwatch.detect.proposals.logic import Compiled, LogicError, compile_logic, sha256
from agentwatch.soc.audit import AuditEntry
from agentwatch.soc.auth.service import actor_of, client_of

_running: weakref.WeakKeyDictionary[Any, threading.BoundedSemaphore] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@contextmanager
def busy(aw: Any) -> Iterator[None]:
    """Hold one of the node's replay slots for the block; 429 when none is free."""
    with _lock:
        slots = _running.get(aw)
        if slots is None:
            slots = _running[aw] = threading.BoundedSemaphore(aw.settings.proposals.max_running_evals)
    if not slots.acquire(blocking=False):
        raise ApiError(
            "eval: proposals.max_running_evals evals or baseline runs are already running; retry shortly",
            status=429,
            code="RATE_LIMITED",
            headers={"Retry-After": "5"},
        )
    try:
        yield
    finally:
        slots.release()


def person_of(request: Request) -> str:
    """The person behind the request, for the four-eyes rule: an API key counts as its owner."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return "anonymous:anonymous"
    if principal.kind == "api_key" and principal.extra.get("owner_id"):
        return f"user:{principal.extra['owner_id']}"
    return f"{principal.kind}:{principal.id}"


def _compiled_or_400(logic: str) -> Compiled:
    try:
        return compile_logic(logic, MAX_LOGIC_BYTES)
    except LogicError as exc:
        raise InvalidRequest(str(exc), exc.details()) from None


async def checked_logic(request: Request, logic: str) -> Compiled:
    """``logic`` compiled (400 naming line and column when it cannot be); 409 when its rule id
    is already loaded (promotion could never store it)."""
    compiled = await run_in_threadpool(_compiled_or_400, logic)
    comp = request.app.state.aw.components.get("detection")
    if comp is not None:
        await run_in_threadpool(comp.engine.ensure_loaded)
        if compiled.rule_id in comp.engine.infos:
            raise Conflict(
                f"logic: a rule with id {compiled.rule_id!r} is already loaded; give the proposal its own id",
                {"rule_id": compiled.rule_id},
            )
    return compiled


def detection_of(request: Request) -> DetectionEngine:
    comp = request.app.state.aw.components.get("detection")
    if comp is None:
        raise Unavailable("detection: the detection engine is not running")
    return comp.engine


def promote_checks(p: store.Proposal, latest: Any | None) -> None:
    """409 unless ``p`` is approved at its current logic version with a passing eval of that text."""
    if p.status != "approved":
        raise Conflict(
            f"status: only an approved proposal can be promoted (this one is {p.status!r})", {"status": p.status}
        )
    if p.row.approved_logic_version != p.version:
        raise Conflict(f"logic_version: version {p.version} was not the version approved; decide it again")
    if latest is None:
        raise Conflict(
            f"eval: logic version {p.version} has no eval; POST /api/v1/detection-proposals/{p.id}/eval first"
        )
    if not latest.passed:
        raise Conflict(f"eval: the latest eval of logic version {p.version} failed", {"eval_id": latest.id})
    if latest.logic_sha256 != sha256(p.row.logic):
        raise Conflict("eval: the latest eval ran on other logic than the proposal holds", {"eval_id": latest.id})


async def upload(request: Request, p: store.Proposal) -> str:
    """Store and activate the proposal's rule as ``POST /api/v1/sigma/rules`` would; its id."""
    engine = detection_of(request)
    try:
        infos = await run_in_threadpool(engine.upload_sigma, p.row.logic)
    except SigmaUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except RuleConflict as exc:
        raise Conflict(f"rule_id: a rule with id {exc.rule_id!r} is already loaded", {"rule_id": exc.rule_id}) from None
    except StoreFull as exc:
        raise ApiError(str(exc), status=507, code="INSUFFICIENT_STORAGE") from None
    return infos[0].id


async def audit(request: Request, action: str, proposal_id: str, details: dict[str, Any]) -> None:
    """One row of the hash-chained audit log for a decision or a promotion (beside the request's own)."""
    log = getattr(request.app.state.aw, "audit", None)
    if log is None:
        return
    entry = AuditEntry(
        action,
        **actor_of(getattr(request.state, "principal", None)),
        target=f"detection_proposal:{proposal_id}",
        status=200,
        client=client_of(request),
        details=details,
    )
    await log.record(entry)
