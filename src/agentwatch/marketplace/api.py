"""``/api/v1/marketplace``: the signed catalogue of detections, playbooks and plugin notes, each
item's detail, installing one (``POST /api/v1/marketplace/items/{slug}:install``), uninstalling it
(``POST /api/v1/marketplace/items/{slug}:uninstall``), and the bundled index itself, read-only
(``GET /marketplace/index.json``).

Reading needs ``rules:read``; installing a detection ``rules:write``, a playbook
``playbooks:write`` (and the permission of each of its steps); uninstalling needs the permission
installing that kind does. An item that does not verify is
listed with its reason and never installed (409); installing the installed version again is
409; a newer version updates the rule or playbook it became. An uninstall deletes only the rules
that are still those the install made, and lists the others as kept.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import read_model
from agentwatch.api.errors import Conflict, InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import principal_name, require
from agentwatch.events.model import iso
from agentwatch.marketplace import install, marks, store, uninstall
from agentwatch.marketplace.index import Entry, bundled_bytes, catalogue_of
from agentwatch.marketplace.items import SLUG_RE, version_key

router = APIRouter(tags=["marketplace"])
PREFIX = "/api/v1/marketplace"
SUMMARY_FIELDS = ("slug", "kind", "name", "version", "summary", "author", "tags")
INSTALL_BODY_BYTES = 1024


class InstallIn(BaseModel):
    """The body of an install: no fields (an unknown one is refused, not ignored)."""

    model_config = ConfigDict(extra="forbid")


def _slug(slug: str) -> str:
    if len(slug) > 64 or SLUG_RE.fullmatch(slug) is None:
        raise InvalidRequest("slug: must be 1-64 lowercase letters, digits or inner dashes")
    return slug


def _doc(e: Entry, installed: dict[str, Any] | None, *, full: bool = False) -> dict[str, Any]:
    item = e.item
    out: dict[str, Any] = {k: item.get(k) for k in SUMMARY_FIELDS}
    out |= {
        "source": e.source,
        "verified": e.verified,
        "reason": e.reason,
        "installed": installed is not None,
        "installed_version": installed["version"] if installed else None,
    }
    if installed is not None:
        out["install"] = store.public(installed)
    if full:
        out |= {"manifest": item.get("manifest"), "sha256": item.get("sha256"), "signature": item.get("signature")}
    return out


@router.get(
    f"{PREFIX}/items", dependencies=[require("rules:read"), only_query("kind", "tag", "q", "verified", "installed")]
)
async def list_items(
    request: Request,
    kind: Literal["detection", "playbook", "plugin"] | None = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=128, description="substring of slug, name or summary")
    ] = None,
    verified: bool | None = None,
    installed: bool | None = None,
) -> dict[str, Any]:
    """Every item of the bundled and the remote index; filters combine with AND."""
    cat = catalogue_of(request.app.state.aw)
    entries = await cat.entries()
    done = await install.still_there(request, await run_in_threadpool(store.all_installs, request.app.state.aw.engine))
    out = []
    for e in entries:
        it = e.item
        if kind is not None and it.get("kind") != kind:
            continue
        if tag is not None and tag not in (it.get("tags") or []):
            continue
        if q is not None and not any(q.lower() in str(it.get(f, "")).lower() for f in ("slug", "name", "summary")):
            continue
        if verified is not None and e.verified != verified:
            continue
        if installed is not None and (it["slug"] in done) != installed:
            continue
        out.append(_doc(e, done.get(it["slug"])))
    remote = cat.remote_state()
    if remote is not None and remote["fetched_at"] is not None:
        remote["fetched_at"] = iso(remote["fetched_at"])
    return {"items": out, "meta": {"total": len(out), "remote": remote}}


async def _entry(request: Request, slug: str) -> Entry:
    found = await catalogue_of(request.app.state.aw).find(_slug(slug))
    if found is None:
        raise NotFound("item not found", {"slug": slug})
    return found


@router.get(f"{PREFIX}/items/{{slug}}", dependencies=[require("rules:read"), only_query()])
async def get_item(request: Request, slug: str) -> dict[str, Any]:
    """The item with its manifest, digest and signature, whether it verifies, and its install."""
    e = await _entry(request, slug)
    return _doc(e, await _installed(request, slug), full=True)


async def _installed(request: Request, slug: str) -> dict[str, Any] | None:
    """The install of ``slug`` when its rule or playbook still exists."""
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, slug)
    if found is None:
        return None
    return (await install.still_there(request, {slug: found})).get(slug)


@router.post(f"{PREFIX}/items/{{slug}}:install", dependencies=[require("rules:read"), only_query()])
async def install_item(request: Request, slug: str) -> Response:
    """Install a verified item (201 the first time, 200 for an update to a newer version). The
    body, when sent, is an empty object: nothing about an install is chosen by the caller."""
    await read_model(request, InstallIn, INSTALL_BODY_BYTES, optional=True)
    e = await _entry(request, slug)
    item = e.item
    request.state.audit_details = {"slug": slug}
    kind = item.get("kind")
    install.check_permission(request, str(kind))
    if not e.verified:
        raise Conflict(f"slug: {slug!r} cannot be installed: it does not verify ({e.reason})", {"slug": slug})
    if kind == "plugin":
        raise install.refuse_plugin(item)
    engine = request.app.state.aw.engine
    row = await run_in_threadpool(store.get, engine, slug)
    if row is not None and store.fresh_claim(row):
        raise _another(slug, row)
    before = await _installed(request, slug) if row is not None else None
    if before is not None:
        if before["version"] == item["version"]:
            raise Conflict(f"version: {slug} {item['version']} is installed already", {"slug": slug})
        if version_key(before["version"]) > version_key(item["version"]):
            raise Conflict(
                f"version: {slug} {before['version']} is installed, newer than {item['version']}", {"slug": slug}
            )
        if before["kind"] != kind:
            raise Conflict(f"kind: {slug} was installed as a {before['kind']}, not a {kind}", {"slug": slug})
    # one install of a slug at a time: claim it before making anything, so a loser makes nothing
    try:
        token = await run_in_threadpool(store.claim, engine, slug, item["version"], kind, principal_name(request), row)
    except store.Raced:
        raise _another(slug) from None
    run = install.detection if kind == "detection" else install.playbook
    # what an earlier install of this kind made, even when it no longer counts as installed (a
    # rule of a detection's file dropped): the update goes through what is left of it
    previous = row["resource_ids"] if row is not None and not store.pending(row) and row["kind"] == kind else []
    try:
        made, made_marks = await run(request, item, previous)
        await run_in_threadpool(store.settle, engine, slug, token, made, made_marks)
    except store.Raced:  # slower than store.CLAIM_TTL_S: another install took the claim over
        raise _another(slug) from None
    except BaseException:
        await run_in_threadpool(store.release, engine, slug, token, row)
        raise
    request.state.audit_details = {
        "slug": slug,
        "version": item["version"],
        "kind": kind,
        ("updated" if before else "installed"): made[0],
    }
    doc = _doc(e, await run_in_threadpool(store.get, engine, slug))
    doc["resource_id"], doc["resource_ids"] = made[0], made
    doc["updated_from"] = before["version"] if before else None
    return JSON(doc, status_code=200 if before else 201)


def _another(slug: str, row: dict[str, Any] | None = None) -> Conflict:
    doing = "uninstalled" if row is not None and store.uninstalling(row) else "installed"
    return Conflict(
        f"slug: {slug} is being {doing} by another request; list the items to see its install", {"slug": slug}
    )


def _busy(slug: str) -> Conflict:
    return Conflict(
        f"slug: {slug} is being installed or uninstalled by another request; list the items to see its install",
        {"slug": slug},
    )


@router.post(f"{PREFIX}/items/{{slug}}:uninstall", dependencies=[require("rules:read"), only_query()])
async def uninstall_item(request: Request, slug: str) -> dict[str, Any]:
    """Remove what the install of ``slug`` made (every rule of a detection, or the playbook) and
    its install record; a rule or playbook already deleted by hand is no error, and a rule that is
    no longer the one the install made (stored again under its id, or edited) is kept and listed
    in ``kept``. The item need not be listed any more. The body, when sent, is an empty object."""
    await read_model(request, InstallIn, INSTALL_BODY_BYTES, optional=True)
    _slug(slug)
    request.state.audit_details = {"slug": slug}
    engine = request.app.state.aw.engine
    row = await run_in_threadpool(store.get, engine, slug)
    if row is None:
        raise NotFound(f"slug: {slug} is not installed", {"slug": slug})
    kind = row["kind"]
    install.check_permission(request, kind, "uninstalling")
    if store.fresh_claim(row):
        raise _busy(slug)
    # the same claim as an install's: an install or uninstall of the slug meanwhile loses at it
    try:
        token = await run_in_threadpool(
            store.claim, engine, slug, row["version"], kind, principal_name(request), row, uninstall=True
        )
    except store.Raced:
        raise _busy(slug) from None
    ids = [] if store.pending(row) else row["resource_ids"]  # an abandoned claim recorded nothing
    recorded = row["_marks"]
    try:
        if recorded is None and kind == "detection" and ids:  # recorded before marks were
            recorded = await uninstall.listed_marks(request, slug, row["version"], ids)
        removed, gone, kept = await uninstall.remover(kind)(request, ids, recorded)
        await run_in_threadpool(store.forget, engine, slug, token)
    except store.Raced:  # slower than store.CLAIM_TTL_S: another request took the claim over
        raise _busy(slug) from None
    except BaseException:
        await run_in_threadpool(store.release, engine, slug, token, row)
        raise
    request.state.audit_details = {
        "slug": slug,
        "version": row["version"],
        "kind": kind,
        "uninstalled": [i for i in ids if i not in kept],
    }
    if kept:
        request.state.audit_details["kept"] = list(kept)
    return {
        "slug": slug,
        "kind": kind,
        "version": row["version"],
        "removed": removed,
        "already_gone": gone,
        "kept": marks.answer(kept),
    }


@router.get("/marketplace/index.json", dependencies=[require("rules:read"), only_query()])
async def index_json() -> Response:
    """The bundled index as shipped (signed items; verify them against the bundled publisher key)."""
    return Response(bundled_bytes(), media_type="application/json", headers={"Cache-Control": "no-cache"})
