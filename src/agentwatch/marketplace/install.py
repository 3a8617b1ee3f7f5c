"""Installing a verified item through the code its kind already has.

- detection: the Sigma manifest goes into the engine's rule store as ``POST /api/v1/rules`` puts
  it there (same reader, ReDoS guard, limits, errors); an update replaces the text of the rule
  installed before (``PUT /api/v1/rules/{id}``), or uploads it again when that rule was deleted.
  Needs ``rules:write``.
- playbook: the manifest is checked as ``POST /api/v1/playbooks`` checks a body, the installer must
  hold each step's permission, and it is stored in (or replaces) the playbooks store: a new one
  disabled (a person here switches it on), an update keeping the installed one's switch. Needs
  ``playbooks:write``.
- plugin: never from the API (409): a plugin is a Python package an operator installs with pip.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import ApiError, Conflict, InvalidRequest
from agentwatch.api.security import principal_name
from agentwatch.api.v1_rules import run_rule_change, synced_rule_engine
from agentwatch.detect import rule_edit
from agentwatch.marketplace import store
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.soc.playbooks.api import check_step_permissions, reload_automatic_playbooks
from agentwatch.soc.playbooks.model import Invalid, parse_playbook

NEEDS = {"detection": "rules:write", "playbook": "playbooks:write"}


async def still_there(request: Request, installs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``installs`` (slug -> install) whose rule or playbook still exists: one deleted through
    its own API, or an install still under way, does not count as installed."""
    settled = {slug: i for slug, i in installs.items() if not store.pending(i)}
    rule_ids: set[str] = set()
    if any(i["kind"] == "detection" for i in settled.values()):
        engine, _ = await synced_rule_engine(request)
        rule_ids = set(engine.infos)
    book_ids = [i["resource_id"] for i in settled.values() if i["kind"] == "playbook"]
    books = await run_in_threadpool(playbooks.existing, request.app.state.aw.engine, book_ids) if book_ids else set()
    there = {"detection": rule_ids, "playbook": books}
    return {slug: i for slug, i in settled.items() if i["resource_id"] in there.get(i["kind"], set())}


def check_permission(request: Request, kind: str) -> None:
    needed = NEEDS.get(kind)
    if needed is None:
        return
    principal = getattr(request.state, "principal", None)
    if principal is None or not principal.can(needed):
        raise ApiError(
            f"kind: installing a {kind} needs permission {needed!r}, which the caller does not hold", status=403
        )


def refuse_plugin(item: dict[str, Any]) -> Conflict:
    m = item["manifest"]
    return Conflict(
        f"kind: a plugin is never installed through the API; it is a Python package an operator installs "
        f"with pip ({m['package']}=={m['version']}) and switches on in the configuration",
        {"slug": item["slug"]},
    )


async def detection(request: Request, item: dict[str, Any], previous: str | None) -> str:
    """Install or update the rule; the id of the (first) rule it defines."""
    engine, sync = await synced_rule_engine(request)
    text = item["manifest"]
    if previous is not None and previous in engine.infos:
        infos, _, revision = await run_rule_change(lambda: rule_edit.replace(engine, previous, text))
        if revision is not None:
            sync.mark(revision)
    else:
        infos = await run_rule_change(lambda: engine.upload_sigma(text))
    return str(infos[0].id)


async def playbook(request: Request, item: dict[str, Any], previous: str | None) -> str:
    """Create or replace the playbook; its id."""
    aw = request.app.state.aw
    try:
        doc = parse_playbook(item["manifest"], aw.settings.playbooks)
    except Invalid as exc:
        raise InvalidRequest(f"manifest.{exc}", exc.problems[:100]) from None
    check_step_permissions(request, doc)
    # a playbook acts on its own: it never does before a person here switched it on (a new one
    # starts disabled whatever its manifest says; an update keeps the installed one's switch)
    current = await run_in_threadpool(playbooks.get, aw.engine, previous) if previous is not None else None
    doc = {**doc, "enabled": bool(current and current["enabled"])}
    try:
        if current is not None and await run_in_threadpool(playbooks.replace, aw.engine, current["id"], doc):
            pid = current["id"]
        else:
            pid = await run_in_threadpool(
                playbooks.create, aw.engine, doc, principal_name(request), aw.settings.playbooks.max_playbooks
            )
    except playbooks.NameTaken:
        raise Conflict(f"manifest.name: a playbook named {doc['name']!r} exists already") from None
    except playbooks.Full:
        raise Conflict(
            f"manifest: the store holds playbooks.max_playbooks ({aw.settings.playbooks.max_playbooks})"
        ) from None
    await reload_automatic_playbooks(request)
    return pid
