"""Removing what an install made, through the code each kind already has.

- detection: every rule the install recorded that still exists *and is still the rule the install
  made* (:mod:`agentwatch.marketplace.marks`) is deleted as ``DELETE /api/v1/rules/{id}`` deletes
  a rule (the same guard for a rule that went live through a detection proposal, the same removal,
  which bumps the revision other nodes follow). The rules of one uploaded file go together. A rule
  stored again under a recorded id, or edited since, is kept and reported with the reason; the
  check is made again inside the deleting transaction, so a rule replaced in between is kept too.
  An install recorded before marks were is checked against the manifest of the installed version
  as the index verifies it now (:func:`listed_marks`).
- playbook: deleted from the playbooks store as ``DELETE /api/v1/playbooks/{id}`` does, and the
  automatic trigger reads its playbooks again.

A rule or playbook already deleted by hand is no error: it is reported as already gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.v1_rules import keep_the_decision, run_rule_change, synced_rule_engine
from agentwatch.detect import rule_edit
from agentwatch.detect.engine import DetectionEngine
from agentwatch.marketplace import marks
from agentwatch.marketplace.index import catalogue_of
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.soc.playbooks.api import reload_automatic_playbooks

Removed = tuple[list[str], list[str], dict[str, str]]  # (removed now, already gone, kept: id -> reason)


async def listed_marks(request: Request, slug: str, version: str, ids: list[str]) -> marks.Marks | None:
    """Marks for an install recorded before they were: each rule is taken to be the pack's when its
    YAML is the manifest of ``version`` as the index lists and verifies it now (its ``created_at``
    unknown). None (every rule kept) when the index no longer lists that version verified."""
    entry = await catalogue_of(request.app.state.aw).find(slug)
    if entry is None or not entry.verified or entry.item.get("version") != version:
        return None
    manifest = entry.item.get("manifest")
    if entry.item.get("kind") != "detection" or not isinstance(manifest, str):
        return None
    return marks.of(manifest, dict.fromkeys(ids))


def _check(ids: list[str], recorded: marks.Marks | None) -> Callable[[dict[str, Any]], None]:
    """The check made on the rows of a file in the transaction deleting them."""

    def check(group: dict[str, Any]) -> None:
        kept = marks.judge([r for r in ids if r in group], group, recorded)
        if kept:
            raise marks.NotThePacks(kept)

    return check


def _remove_rule(engine: DetectionEngine, rule_id: str, ids: list[str], recorded: marks.Marks | None) -> str | None:
    """Delete ``rule_id`` with the other rules of ``ids`` sharing its file; the new revision, or
    None when it was deleted meanwhile. Raises NotThePacks when the file is no longer the pack's."""
    try:
        return rule_edit.remove(engine, rule_id, along=ids, check=_check(ids, recorded))
    except KeyError:
        return None


async def detection(request: Request, ids: list[str], recorded: marks.Marks | None) -> Removed:
    if not ids:
        return [], [], {}
    engine, sync = await synced_rule_engine(request)
    present = [r for r in ids if r in engine.infos]
    rows = await run_in_threadpool(marks.stored, engine.db, present)
    kept = marks.judge(present, rows, recorded)
    mine = [r for r in present if r not in kept]
    for rule_id in mine:
        await keep_the_decision(request, rule_id)
    for rule_id in mine:
        if rule_id not in engine.infos or rule_id in kept:  # went with (or stays with) an earlier one's file
            continue
        try:
            revision = await run_rule_change(lambda rule_id=rule_id: _remove_rule(engine, rule_id, ids, recorded))
        except marks.NotThePacks as exc:  # changed since the check above: kept, nothing deleted
            kept.update(exc.kept)
            continue
        if revision is not None:
            sync.mark(revision)
    return [r for r in mine if r not in kept], [r for r in ids if r not in present], kept


async def playbook(request: Request, ids: list[str], recorded: marks.Marks | None) -> Removed:
    aw = request.app.state.aw
    removed = [pid for pid in ids if await run_in_threadpool(playbooks.remove, aw.engine, pid)]
    if removed:
        await reload_automatic_playbooks(request)
    return removed, [pid for pid in ids if pid not in removed], {}


async def nothing(request: Request, ids: list[str], recorded: marks.Marks | None) -> Removed:
    return [], list(ids), {}


def remover(kind: str) -> Callable[[Request, list[str], marks.Marks | None], Awaitable[Removed]]:
    return {"detection": detection, "playbook": playbook}.get(kind, nothing)
