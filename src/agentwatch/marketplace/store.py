"""Installed marketplace items: read all, read one, the three steps of an install, and the
end of an uninstall.

An install is one per slug at a time, on any number of nodes: it first *claims* the slug (one
conditional write: the insert of a new row, whose primary key is the slug, or the update of the
row exactly as the installer read it), then makes its rule or playbook, then *settles* the claim
with the id of what it made. A second install of the slug loses at the claim, before it made
anything, so the loser never leaves a resource behind (:class:`Raced`). An install that fails
after its claim *releases* it (the row as it was). While claimed, the row's ``resource_id`` is
:data:`PENDING` followed by the claim's token; a claim older than :data:`CLAIM_TTL_S` (its
node stopped mid-install) may be taken over. A detection whose manifest holds several rules
records them all (``resource_ids``; ``resource_id`` is the first), with what each looked like as
stored (``rule_marks``: :mod:`agentwatch.marketplace.marks`), so an uninstall can tell the rules it made from a rule
edited or stored again under the same id since. An uninstall claims the slug
the same way (its token marked :data:`UNINSTALL`), removes what the install made, then deletes the
row (:func:`forget`), or releases the claim when the removal failed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.marketplace.schema import marketplace_installs as t

PENDING = "pending:"
UNINSTALL = "uninstall-"  # after PENDING in the token of an uninstall's claim
CLAIM_TTL_S = 300.0


class Raced(Exception):
    """Another install of the same slug claimed it first."""


def _ids(row: Any) -> list[str]:
    """Every resource the install made (a row written before they were recorded: its one id)."""
    ids = orjson.loads(row.resource_ids) if row.resource_ids else None
    return [str(i) for i in ids] if isinstance(ids, list) and ids else [row.resource_id]


def _marks(row: Any) -> dict[str, dict[str, Any]] | None:
    """What each rule looked like when installed (None: a row written before that was recorded)."""
    marks = orjson.loads(row.rule_marks) if row.rule_marks else None
    return marks if isinstance(marks, dict) else None


def _json(row: Any) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "version": row.version,
        "kind": row.kind,
        "resource_id": row.resource_id,
        "resource_ids": _ids(row),
        "installed_by": row.installed_by,
        "installed_at": iso(row.installed_at),
        "updated_at": iso(row.updated_at),
        "_updated": row.updated_at,
        "_marks": _marks(row),
    }


def public(install: dict[str, Any]) -> dict[str, Any]:
    """The install as the API shows it."""
    return {k: v for k, v in install.items() if not k.startswith("_")}


def pending(install: dict[str, Any]) -> bool:
    """Whether an install of this slug is under way (claimed, not settled yet)."""
    return str(install["resource_id"]).startswith(PENDING)


def fresh_claim(install: dict[str, Any], now: float | None = None) -> bool:
    """Whether this row is the claim of an install that may still be under way."""
    at = time.time() if now is None else now
    return pending(install) and at - install["_updated"] < CLAIM_TTL_S


def all_installs(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.slug: _json(r) for r in conn.execute(select(t))}


def get(engine: Engine, slug: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.slug == slug)).first()
    return None if row is None else _json(row)


def uninstalling(install: dict[str, Any]) -> bool:
    """Whether the claim on this row is an uninstall's."""
    return str(install["resource_id"]).startswith(PENDING + UNINSTALL)


def claim(
    engine: Engine,
    slug: str,
    version: str,
    kind: str,
    who: str,
    before: dict[str, Any] | None,
    *,
    uninstall: bool = False,
) -> str:
    """Claim ``slug`` for the install of ``version`` (or, with ``uninstall``, for removing it); the
    claim's token. ``before`` is the row as the installer read it (None: there was none). Raises
    Raced when the row is not that any more."""
    token = PENDING + (UNINSTALL if uninstall else "") + uuid.uuid4().hex
    now = time.time()
    values = {
        "version": version,
        "kind": kind,
        "resource_id": token,
        "resource_ids": None,
        "rule_marks": None,
        "installed_by": who,
        "updated_at": now,
    }
    with engine.begin() as conn:
        if before is None:
            try:
                conn.execute(t.insert().values(slug=slug, installed_at=now, **values))
            except IntegrityError:
                raise Raced from None
            return token
        done = conn.execute(
            update(t)
            .where(
                t.c.slug == slug,
                t.c.version == before["version"],
                t.c.resource_id == before["resource_id"],
            )
            .values(**values)
        )
        if done.rowcount != 1:
            raise Raced
    return token


def settle(
    engine: Engine, slug: str, token: str, resource_ids: list[str], marks: dict[str, dict[str, Any]] | None = None
) -> None:
    """Record the resources the claimed install made (a detection may make several rules, with
    their ``marks``). Raises Raced when the claim was taken over."""
    now = time.time()
    with engine.begin() as conn:
        done = conn.execute(
            update(t)
            .where(t.c.slug == slug, t.c.resource_id == token)
            .values(
                resource_id=resource_ids[0],
                resource_ids=orjson.dumps(resource_ids).decode(),
                rule_marks=None if marks is None else orjson.dumps(marks).decode(),
                installed_at=now,
                updated_at=now,
            )
        )
        if done.rowcount != 1:
            raise Raced


def forget(engine: Engine, slug: str, token: str) -> None:
    """Delete the row of an uninstall holding the claim ``token`` (its resources are gone).
    Raises Raced when the claim was taken over."""
    with engine.begin() as conn:
        done = conn.execute(delete(t).where(t.c.slug == slug, t.c.resource_id == token))
        if done.rowcount != 1:
            raise Raced


def release(engine: Engine, slug: str, token: str, before: dict[str, Any] | None) -> None:
    """Give up the claim of an install that failed: the row as it was before (none when none)."""
    with engine.begin() as conn:
        mine = (t.c.slug == slug) & (t.c.resource_id == token)
        if before is None:
            conn.execute(delete(t).where(mine))
            return
        conn.execute(
            update(t)
            .where(mine)
            .values(
                version=before["version"],
                kind=before["kind"],
                resource_id=before["resource_id"],
                resource_ids=orjson.dumps(before["resource_ids"]).decode(),
                rule_marks=None if before["_marks"] is None else orjson.dumps(before["_marks"]).decode(),
                installed_by=before["installed_by"],
                updated_at=before["_updated"],
            )
        )
