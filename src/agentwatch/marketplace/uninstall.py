"""Removing what an install made, through the code each kind already has.

- detection: every rule the install recorded that still exists is deleted as
  ``DELETE /api/v1/rules/{id}`` deletes a rule (the same guard for a rule that went live through a
  detection proposal, the same removal, which bumps the revision other nodes follow). The rules of
  one uploaded file go together; a rule someone else put in that file since is never deleted: 409
  saying which, as the rules API says it.
- playbook: deleted from the playbooks store as ``DELETE /api/v1/playbooks/{id}`` does, and the
  automatic trigger reads its playbooks again.

A rule or playbook already deleted by hand is no error: it is reported as already gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.v1_rules import keep_the_decision, run_rule_change, synced_rule_engine
from agentwatch.detect import rule_edit
from agentwatch.detect.engine import DetectionEngine
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.soc.playbooks.api import reload_automatic_playbooks

Removed = tuple[list[str], list[str]]  # (removed now, already gone)


def _remove_rule(engine: DetectionEngine, rule_id: str, ids: list[str]) -> str | None:
    """Delete ``rule_id`` with the other rules of ``ids`` sharing its file; the new revision, or
    None when it was deleted meanwhile."""
    try:
        return rule_edit.remove(engine, rule_id, along=ids)
    except KeyError:
        return None


async def detection(request: Request, ids: list[str]) -> Removed:
    if not ids:
        return [], []
    engine, sync = await synced_rule_engine(request)
    present = [r for r in ids if r in engine.infos]
    for rule_id in present:
        await keep_the_decision(request, rule_id)
    for rule_id in present:
        if rule_id not in engine.infos:  # went with the file of a rule removed before it
            continue
        revision = await run_rule_change(lambda rule_id=rule_id: _remove_rule(engine, rule_id, ids))
        if revision is not None:
            sync.mark(revision)
    return present, [r for r in ids if r not in present]


async def playbook(request: Request, ids: list[str]) -> Removed:
    aw = request.app.state.aw
    removed = [pid for pid in ids if await run_in_threadpool(playbooks.remove, aw.engine, pid)]
    if removed:
        await reload_automatic_playbooks(request)
    return removed, [pid for pid in ids if pid not in removed]


async def nothing(request: Request, ids: list[str]) -> Removed:
    return [], list(ids)


def remover(kind: str) -> Callable[[Request, list[str]], Awaitable[Removed]]:
    return {"detection": detection, "playbook": playbook}.get(kind, nothing)
