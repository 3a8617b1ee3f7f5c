"""Running a playbook's steps on one alert, in order, and recording the run.

A step that fails stops the run (the steps after it are ``skipped``), unless the step says
``continue_on_error``. The run ends ``succeeded`` (no step failed), ``failed`` (a failure stopped
it), ``completed_with_errors`` (steps failed and the run went on) or ``interrupted`` (the server
stopped it: the step it was in shows ``interrupted``, the later ones ``skipped``; or its process
died, and a sweep ended it, see :mod:`agentwatch.soc.playbooks.liveness`; it is not started
again, as it may have done part of its work). While it runs, its process keeps its heartbeat
and records each step's result as the step ends. Each step's result holds
its status, its output (at most :data:`MAX_OUTPUT_BYTES` of JSON), its error (at most
:data:`MAX_ERROR` characters) and its timing. A dry run asks every step what it would change
(:meth:`Action.preview`) and changes nothing.

Steps run with :data:`IN_RUN` set, so an alert recorded while a playbook runs never starts a
playbook (:mod:`agentwatch.soc.playbooks.trigger`): a playbook's own doings cannot loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

from agentwatch.events.model import iso
from agentwatch.soc.playbooks import approval, liveness, store
from agentwatch.soc.playbooks.actions import ACTIONS, ActionError, RunContext
from agentwatch.soc.playbooks.background import carry
from agentwatch.soc.playbooks.model import Step, check_step

log = structlog.get_logger("agentwatch.playbooks")
MAX_OUTPUT_BYTES = 4096
MAX_ERROR = 1000
STOPPED = "interrupted: the server stopped during the run; the step cut off may or may not have taken effect"
IN_RUN: ContextVar[str | None] = ContextVar("agentwatch_playbook_run", default=None)


def bounded(output: Any) -> Any:
    """``output`` when its JSON fits :data:`MAX_OUTPUT_BYTES`, else its start, marked cut."""
    text = orjson.dumps(output)
    if len(text) <= MAX_OUTPUT_BYTES:
        return output
    return {"truncated": True, "json": text[: MAX_OUTPUT_BYTES - 64].decode("utf-8", "ignore")}


async def _one(ctx: RunContext, index: int, step: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    started = time.time()
    result: dict[str, Any] = {"index": index, "action": step["action"], "name": step.get("name")}
    output, error = None, None
    # checked again now: a URL the SSRF guard let through when saved may be refused today
    params, problems = check_step(index, Step.model_validate(step), ctx.aw.settings.playbooks)
    try:
        if problems:
            raise ActionError(f"{problems[0]['field']}: {problems[0]['rule']}")
        action = ACTIONS[step["action"]]
        output = await (action.preview(ctx, params) if dry_run else action.apply(ctx, params))
    except ActionError as exc:
        error = str(exc)[:MAX_ERROR]
    except Exception as exc:  # a bug in an action must not lose the run's record
        log.exception("playbooks.step_crashed", action=step["action"])
        error = f"{type(exc).__name__}: the step failed unexpectedly"
    result.update(
        status="failed" if error else "succeeded",
        output=bounded(output) if output is not None else None,
        error=error,
        started_at=iso(started),
        duration_ms=round((time.time() - started) * 1000, 3),
    )
    return result


def _not_run(index: int, step: dict[str, Any], status: str) -> dict[str, Any]:
    return {"index": index, "action": step["action"], "name": step.get("name"), "status": status}


async def run_steps(
    ctx: RunContext,
    steps: list[dict[str, Any]],
    dry_run: bool,
    results: list[dict[str, Any]] | None = None,
    step_ended: Callable[[], None] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(the run's status, one result per step); each result is appended to ``results`` (when
    given) as its step ends, so the caller keeps those of a run cut off, and ``step_ended`` is
    called then (the heartbeat records them at once)."""
    results = [] if results is None else results
    stopped, failures = False, 0
    token = IN_RUN.set(ctx.playbook["id"] if ctx.playbook else "dry-run")
    try:
        for index, step in enumerate(steps):
            if stopped:
                results.append(_not_run(index, step, "skipped"))
                continue
            result = await _one(ctx, index, step, dry_run)
            results.append(result)
            if step_ended is not None:
                step_ended()
            if result["status"] == "failed":
                failures += 1
                stopped = not step.get("continue_on_error", False)
    finally:
        IN_RUN.reset(token)
    status = "failed" if stopped else ("completed_with_errors" if failures else "succeeded")
    return status, results


async def execute(
    aw: Any,
    playbook: dict[str, Any],
    alert: dict[str, Any],
    *,
    dry_run: bool,
    trigger: str,
    started_by: str,
    person: str,
) -> dict[str, Any] | None:
    """Run ``playbook`` on ``alert`` and store the run; the run as ``GET .../runs`` shows it, or
    None (nothing done) when the playbook was deleted meanwhile or, for an automatic run, this
    playbook was started on this alert before. A playbook that requires approval is not run but
    held (:mod:`agentwatch.soc.playbooks.approval`: the run answered waits, ``awaiting_approval``);
    ``person`` is who asked, for the four-eyes rule: the person behind the credential
    (:func:`agentwatch.soc.approvals.decisions.person_of`), or a ``system:`` name for a run
    nobody asked for (:data:`agentwatch.soc.playbooks.trigger.SYSTEM_PERSON`). It has no default:
    a caller that forgot it would let its requester approve their own run."""
    stored = await begin(aw, playbook, alert, dry_run=dry_run, trigger=trigger, started_by=started_by, person=person)
    if stored is None:
        return None
    run_id, runs_now = stored
    if not runs_now:
        return await asyncio.to_thread(store.get_run, aw.engine, run_id)
    return await run_started(aw, playbook, alert, run_id, dry_run=dry_run, trigger=trigger)


async def start(
    aw: Any,
    playbook: dict[str, Any],
    alert: dict[str, Any],
    *,
    dry_run: bool,
    trigger: str,
    started_by: str,
    person: str,
) -> tuple[dict[str, Any] | None, bool]:
    """:func:`execute` for a request, which must not be held for a long run nor stop it by
    going away: the steps run as a task of the server (:func:`background.carry`), waited for at
    most ``playbooks.execute_wait_s``. (The run as it stands then, or None as :func:`execute`
    answers; whether it is still going.) Raises :class:`approval.Held` as :func:`execute`."""
    stored = await begin(aw, playbook, alert, dry_run=dry_run, trigger=trigger, started_by=started_by, person=person)
    if stored is None:
        return None, False
    run_id, runs_now = stored
    going = False
    if runs_now:
        steps = run_started(aw, playbook, alert, run_id, dry_run=dry_run, trigger=trigger)
        going = not await carry(aw, steps, run_id)
    return await asyncio.to_thread(store.get_run, aw.engine, run_id), going


async def begin(
    aw: Any,
    playbook: dict[str, Any],
    alert: dict[str, Any],
    *,
    dry_run: bool,
    trigger: str,
    started_by: str,
    person: str,
) -> tuple[str, bool] | None:
    """The first half of :func:`execute`: store the run, ``running`` or held for approval; (its
    id, whether its steps are to run now, by :func:`run_started`), or None as :func:`execute`."""
    if not dry_run and approval.needed(playbook):
        run = await approval.hold(aw, playbook, alert, trigger=trigger, started_by=started_by, person=person)
        return None if run is None else (run["id"], False)
    started = await asyncio.to_thread(
        store.start_run, aw.engine, playbook["id"], alert["id"], dry_run=dry_run, trigger=trigger, started_by=started_by
    )
    return None if started is None else (started[0], True)


async def run_started(
    aw: Any, playbook: dict[str, Any], alert: dict[str, Any], run_id: str, *, dry_run: bool, trigger: str
) -> dict[str, Any] | None:
    """Run the steps of a stored ``running`` run, keeping its heartbeat, and complete it; the
    run. Cancelled (a stop), it stores the run ``interrupted`` with the results so far, and
    raises CancelledError. A run a sweep ended meanwhile (this process stalled past
    ``playbooks.stale_run_s``) keeps that record: the run answered is the interrupted one."""
    keep = aw.settings.playbooks.max_runs_per_playbook
    ctx = RunContext(aw, alert, author=f"playbook:{playbook['id']}", run_id=run_id, playbook=playbook)
    status = "failed"
    results: list[dict[str, Any]] = []
    heartbeat = liveness.Heartbeat(aw, run_id, results)
    heartbeat.start()
    try:
        status, _ = await run_steps(ctx, playbook["steps"], dry_run, results, heartbeat.step_ended)
    except asyncio.CancelledError:
        status = store.INTERRUPTED
        cut, steps = len(results), playbook["steps"]  # the step running when cut off, then the rest
        results.extend(_not_run(i, steps[i], "interrupted" if i == cut else "skipped") for i in range(cut, len(steps)))
        raise
    finally:  # even when cancelled at shutdown: the run is not left "running"
        await asyncio.shield(_complete(aw, heartbeat, run_id, playbook["id"], status, results, keep))
    log.info("playbooks.run", playbook=playbook["id"], run=run_id, status=status, trigger=trigger, dry_run=dry_run)
    return await asyncio.to_thread(store.get_run, aw.engine, run_id)


async def _complete(
    aw: Any, heartbeat: liveness.Heartbeat, run_id: str, playbook_id: str, status: str, results: list, keep: int
) -> None:
    """Stop the heartbeat, then store how the run ended, unless a sweep ended it first."""
    await heartbeat.stop()
    reason = STOPPED if status == store.INTERRUPTED else None
    done = await asyncio.to_thread(store.finish_run, aw.engine, run_id, playbook_id, status, results, keep, reason)
    if not done:  # swept meanwhile (its record stands), or deleted with its playbook
        log.warning("playbooks.run_end_not_recorded", run=run_id, playbook=playbook_id, would_be=status)
