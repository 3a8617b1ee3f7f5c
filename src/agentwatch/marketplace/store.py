"""Installed marketplace items: read all, read one, record a first install or an update."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.marketplace.schema import marketplace_installs as t


class Raced(Exception):
    """Another install of the same slug was recorded meanwhile."""


def _json(row: Any) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "version": row.version,
        "kind": row.kind,
        "resource_id": row.resource_id,
        "installed_by": row.installed_by,
        "installed_at": iso(row.installed_at),
        "updated_at": iso(row.updated_at),
    }


def all_installs(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.slug: _json(r) for r in conn.execute(select(t))}


def get(engine: Engine, slug: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.slug == slug)).first()
    return None if row is None else _json(row)


def record(engine: Engine, slug: str, version: str, kind: str, resource_id: str, who: str, before: str | None) -> None:
    """Record the install of ``version``: a new row when ``before`` is None, else the update of the
    row still at version ``before``. Raises Raced when another install got there first."""
    now = time.time()
    with engine.begin() as conn:
        if before is None:
            try:
                conn.execute(
                    t.insert().values(
                        slug=slug,
                        version=version,
                        kind=kind,
                        resource_id=resource_id,
                        installed_by=who,
                        installed_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError:
                raise Raced from None
            return
        done = conn.execute(
            update(t)
            .where(t.c.slug == slug, t.c.version == before)
            .values(version=version, resource_id=resource_id, installed_by=who, installed_at=now, updated_at=now)
        )
        if done.rowcount != 1:
            raise Raced
