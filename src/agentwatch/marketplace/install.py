"""Installing a verified item through the code its kind already has.

- detection: the Sigma manifest goes into the engine's rule store as ``POST /api/v1/rules`` puts
  it there (same reader, ReDoS guard, limits, errors); it may define several rules, all recorded.
  An update replaces the text through a rule installed before that still exists and that the new
  text defines too (``PUT /api/v1/rules/{id}``: rules the new text drops are removed), or uploads
  it again when none is left. Each rule's mark (:mod:`agentwatch.marketplace.marks`) is read back
  from the rule store, so an uninstall can later tell these rules from others stored under their
  ids. Needs ``rules:write``.
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
from agentwatch.detect.engine import sigma_module
from agentwatch.marketplace import marks, store
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.soc.playbooks.api import check_step_permissions, reload_automatic_playbooks
from agentwatch.soc.playbooks.model import Invalid, parse_playbook

NEEDS = {"detection": "rules:write", "playbook": "playbooks:write"}


async def still_there(request: Request, installs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``installs`` (slug -> install) whose rules (every one a detection made) or playbook still
    exist: one deleted or cut down through its own API, or an install still under way, does not
    count as installed."""
    settled = {slug: i for slug, i in installs.items() if not store.pending(i)}
    rule_ids: set[str] = set()
    if any(i["kind"] == "detection" for i in settled.values()):
        engine, _ = await synced_rule_engine(request)
        rule_ids = set(engine.infos)
    book_ids = [i["resource_id"] for i in settled.values() if i["kind"] == "playbook"]
    books = await run_in_threadpool(playbooks.existing, request.app.state.aw.engine, book_ids) if book_ids else set()
    there = {"detection": rule_ids, "playbook": books}
    return {slug: i for slug, i in settled.items() if set(i["resource_ids"]) <= there.get(i["kind"], set())}


def check_permission(request: Request, kind: str, verb: str = "installing") -> None:
    """403 unless the caller may install (or, ``verb`` "uninstalling", uninstall) a ``kind``."""
    needed = NEEDS.get(kind)
    if needed is None:
        return
    principal = getattr(request.state, "principal", None)
    if principal is None or not principal.can(needed):
        raise ApiError(f"kind: {verb} a {kind} needs permission {needed!r}, which the caller does not hold", status=403)


def refuse_plugin(item: dict[str, Any]) -> Conflict:
    m = item["manifest"]
    return Conflict(
        f"kind: a plugin is never installed through the API; it is a Python package an operator installs "
        f"with pip ({m['package']}=={m['version']}) and switches on in the configuration",
        {"slug": item["slug"]},
    )


def _through(engine: Any, previous: list[str], text: str) -> str | None:
    """The rule installed before to replace the text through: one still there that ``text``
    defines too (else the first still there: the replacement then says the rule is missing)."""
    left = [r for r in previous if r in engine.infos]
    if len(left) > 1:
        sigma = sigma_module()
        defined = {r.id for r in sigma.load_rule(text, "<marketplace>")} if sigma is not None else set()
        left = [r for r in left if r in defined] or left
    return left[0] if left else None


Made = tuple[list[str], marks.Marks | None]  # (ids of what the install made, the rules' marks)


async def detection(request: Request, item: dict[str, Any], previous: list[str]) -> Made:
    """Install or update the rules; the ids of every rule the manifest defines, and their marks."""
    engine, sync = await synced_rule_engine(request)
    text = item["manifest"]
    through = await run_rule_change(lambda: _through(engine, previous, text))
    if through is not None:
        infos, _, revision = await run_rule_change(lambda: rule_edit.replace(engine, through, text))
        if revision is not None:
            sync.mark(revision)
    else:
        infos = await run_rule_change(lambda: engine.upload_sigma(text))
    ids = [str(i.id) for i in infos]
    return ids, await run_in_threadpool(_marks, engine.db, text, ids)


def _marks(db: Any, text: str, ids: list[str]) -> marks.Marks:
    """The marks of the rules just stored from ``text``: the digest is that of ``text`` (what the
    install wrote, even if someone changed the rule in the instant since), the ``created_at`` as
    stored."""
    rows = marks.stored(db, ids)
    return marks.of(text, {rid: float(rows[rid].created_at) if rid in rows else None for rid in ids})


async def playbook(request: Request, item: dict[str, Any], previous_ids: list[str]) -> Made:
    """Create or replace the playbook; its id (as a list of one)."""
    aw = request.app.state.aw
    previous = previous_ids[0] if previous_ids else None
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
    return [pid], None
