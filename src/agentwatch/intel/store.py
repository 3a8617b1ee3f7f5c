"""Stored indicators: add or update many at once, search, read, delete.

Every write holds the writers' lock (:func:`hold_writes`) and logs each indicator it wrote or
deleted in the change log (``intel.changes``), in its transaction; the other nodes of a
deployment read the log to follow it. After it commits, the :class:`Change` (the log's head
before and after it, the indicators written and the ids removed) is handed to this process's
watchers (the matcher), which apply it to their index at once when they were at the head
before it, and otherwise leave it to their next read of the log."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog
from sqlalchemy import Connection, Engine, and_, delete, func, or_, select

from agentwatch.events.model import iso
from agentwatch.intel import changes
from agentwatch.intel.schema import intel_iocs
from agentwatch.intel.writes import hold_writes
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.snapshot import snapshot
from agentwatch.store.upsert import upsert

log = structlog.get_logger("agentwatch.intel")

PURGE_PAGE = 1_000
CHUNK = 500


@dataclass
class Indicator:
    kind: str
    value: str  # canonical (indicators.normalize)
    source: str = "api"
    severity: int = 7
    description: str = ""
    tags: list[str] = field(default_factory=list)
    expires_at: float | None = None
    id: str = ""

    @property
    def digest(self) -> str:
        return digest(self.kind, self.value)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "value": self.value,
            "source": self.source,
            "severity": self.severity,
            "description": self.description,
            "tags": self.tags,
            "expires_at": iso(self.expires_at) if self.expires_at is not None else None,
        }


def digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x1f{value}".encode()).hexdigest()


def from_row(row: Any) -> Indicator:
    return Indicator(
        kind=row.kind,
        value=row.value,
        source=row.source,
        severity=row.severity,
        description=row.description,
        tags=orjson.loads(row.tags),
        expires_at=row.expires_at,
        id=row.id,
    )


def row_json(row: Any) -> dict[str, Any]:
    return {**from_row(row).as_json(), "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


@dataclass
class Change:
    """One committed write: the change log's head it found and the one it left, the indicators
    it wrote (as stored, with their ids) and the ids of those it removed."""

    engine: Engine
    before: int
    after: int
    written: list[Indicator] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class Watcher(Protocol):
    def changed(self, change: Change) -> None: ...


_watchers: weakref.WeakSet[Any] = weakref.WeakSet()


def watch(watcher: Watcher) -> None:
    """Hand ``watcher`` every change this process commits (held weakly)."""
    _watchers.add(watcher)


def _tell(change: Change) -> None:
    for watcher in list(_watchers):
        try:
            watcher.changed(change)
        except Exception:  # the write is committed: a watcher's failure is its own (it rebuilds later)
            log.exception("intel.watcher_failed")


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(intel_iocs)).scalar_one())


def existing_digests(conn: Connection, digests: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(digests), CHUNK):
        chunk = list(digests[i : i + CHUNK])
        found.update(conn.execute(select(intel_iocs.c.digest).where(intel_iocs.c.digest.in_(chunk))).scalars())
    return found


CHANGED = ("source", "severity", "description", "tags", "updated_at", "expires_at")


def _write(conn: Connection, by_digest: dict[str, Indicator], now: float) -> list[Indicator]:
    """Insert the indicators, or update the stored ones of the same digest (keeping their id
    and creation time); the indicators as stored (with their ids)."""
    rows = [
        {
            "id": str(uuid.uuid4()),
            "digest": d,
            "kind": i.kind,
            "value": i.value,
            "source": i.source,
            "severity": i.severity,
            "description": i.description,
            "tags": orjson.dumps(i.tags).decode(),
            "created_at": now,
            "updated_at": now,
            "expires_at": i.expires_at,
        }
        for d, i in sorted(by_digest.items())  # in key order: two writers lock rows in one order
    ]
    update = {name: (lambda t, ex, name=name: getattr(ex, name)) for name in CHANGED}
    for start in range(0, len(rows), CHUNK):
        upsert(conn, intel_iocs, rows[start : start + CHUNK], ["digest"], update)
    ids: dict[str, str] = {}
    digests = list(by_digest)
    for start in range(0, len(digests), CHUNK):
        chunk = digests[start : start + CHUNK]
        found = conn.execute(select(intel_iocs.c.digest, intel_iocs.c.id).where(intel_iocs.c.digest.in_(chunk)))
        ids.update(found.all())
    return [dataclasses.replace(i, id=ids[d]) for d, i in by_digest.items()]


def add(engine: Engine, items: Sequence[Indicator], max_total: int) -> tuple[int, int] | None:
    """Store ``items`` (one per kind and value: a later item replaces an earlier one of the
    batch); an indicator already stored is updated, keeping its id and creation time. (created,
    updated), or None when the new ones would take the store past ``max_total`` (nothing written)."""
    by_digest = {i.digest: i for i in items}
    now = time.time()
    with engine.begin() as conn:
        hold_writes(conn)
        before = changes.head(conn)
        stored = existing_digests(conn, list(by_digest))
        new = len(by_digest) - len(stored)
        if new and int(conn.execute(select(func.count()).select_from(intel_iocs)).scalar_one()) + new > max_total:
            return None
        written = _write(conn, by_digest, now)
        change = Change(engine, before, changes.record(conn, [i.id for i in written], [], now), written)
    _tell(change)
    return new, len(stored)


def _stored(conn: Connection, digests: Sequence[str]) -> dict[str, Any]:
    """digest -> stored row of the indicators among ``digests``, read a chunk per query (a
    feed of tens of thousands is compared with its rows in a few dozen reads)."""
    found: dict[str, Any] = {}
    for i in range(0, len(digests), CHUNK):
        chunk = list(digests[i : i + CHUNK])
        found.update((r.digest, r) for r in conn.execute(select(intel_iocs).where(intel_iocs.c.digest.in_(chunk))))
    return found


def differs(row: Any, item: Indicator) -> bool:
    """Whether storing ``item`` over ``row`` would change anything the matcher or the API reads
    (every field of :class:`Indicator`: kind, value, source, severity, description, tags,
    expiry); the times of the row are not compared, they are what a write would move."""
    return from_row(row) != dataclasses.replace(item, id=row.id)


@dataclass
class SourceSync:
    created: int
    changed: int  # held by the source and listed with another field: rewritten and logged
    unchanged: int  # held by the source and listed as stored: not written, not logged
    removed: int
    held_by_others: int  # listed, but stored under another source: left as they are

    @property
    def updated(self) -> int:
        """The listed indicators the source already held, changed or not (what a sync counted
        as updated when it rewrote them all)."""
        return self.changed + self.unchanged


def replace_source(engine: Engine, source: str, items: Sequence[Indicator], max_total: int) -> SourceSync | None:
    """Make ``items`` the indicators of ``source`` (a feed): add the new ones, rewrite the ones
    it holds whose stored fields differ, and remove the ones it holds that are no longer among
    them, in one transaction; None when the store would go past ``max_total`` (nothing written).
    An indicator it holds as listed is not written: it keeps its ``updated_at`` and gets no
    change log entry, so syncing an unchanged list costs the other nodes nothing. A source
    manages only what it brought: an item already stored under another source (a person's
    indicator made through the API, another feed's) is left as it is, and never removed by
    this source."""
    by_digest = {i.digest: i for i in items}
    with engine.begin() as conn:
        hold_writes(conn)
        before = changes.head(conn)
        stored = _stored(conn, list(by_digest))
        c = intel_iocs.c
        held = dict(conn.execute(select(c.digest, c.id).where(c.source == source)).all())
        stale = sorted(set(held) - set(by_digest))
        others = {d for d, row in stored.items() if row.source != source}
        new = {d: i for d, i in by_digest.items() if d not in stored}
        changed = {d: i for d, i in by_digest.items() if d in stored and d not in others and differs(stored[d], i)}
        unchanged = len(stored) - len(others) - len(changed)
        total = int(conn.execute(select(func.count()).select_from(intel_iocs)).scalar_one())
        if total + len(new) - len(stale) > max_total:
            return None
        for i in range(0, len(stale), CHUNK):
            conn.execute(delete(intel_iocs).where(intel_iocs.c.digest.in_(stale[i : i + CHUNK])))
        written = _write(conn, {**new, **changed}, time.time())
        gone = [held[d] for d in stale]
        change = Change(engine, before, changes.record(conn, [i.id for i in written], gone), written, gone)
    if written or gone:
        _tell(change)
    return SourceSync(len(new), len(changed), unchanged, len(stale), len(others))


@dataclass
class IocQuery:
    q: str | None = None
    kind: str | None = None
    source: str | None = None
    limit: int = 100
    cursor: tuple[float, str] | None = None


def search(engine: Engine, query: IocQuery) -> tuple[list[dict[str, Any]], int, str | None]:
    """(indicators newest first, total matching, next cursor when more remain), read in one
    snapshot so the page and the total agree."""
    cond = []
    if query.q:
        # in any case on both databases (SQLite's LIKE ignores case, PostgreSQL's does not;
        # a URL keeps the case of its path)
        cond.append(func.lower(intel_iocs.c.value).contains(query.q.lower(), autoescape=True))
    if query.kind:
        cond.append(intel_iocs.c.kind == query.kind)
    if query.source:
        cond.append(intel_iocs.c.source == query.source)
    stmt = select(intel_iocs).where(and_(*cond)) if cond else select(intel_iocs)
    total_stmt = select(func.count()).select_from(intel_iocs)
    if cond:
        total_stmt = total_stmt.where(and_(*cond))
    if query.cursor is not None:
        at, last = query.cursor
        c = intel_iocs.c
        stmt = stmt.where(or_(c.created_at < at, and_(c.created_at == at, c.id < last)))
    stmt = stmt.order_by(intel_iocs.c.created_at.desc(), intel_iocs.c.id.desc()).limit(query.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = int(conn.execute(total_stmt).scalar_one())
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [row_json(r) for r in rows], total, nxt


def get(engine: Engine, ioc_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(intel_iocs).where(intel_iocs.c.id == ioc_id)).first()
    return None if row is None else row_json(row)


def remove(engine: Engine, ioc_id: str) -> bool:
    with engine.begin() as conn:
        hold_writes(conn)
        before = changes.head(conn)
        found = conn.execute(select(intel_iocs.c.id).where(intel_iocs.c.id == ioc_id)).first()
        if found is None:
            return False
        conn.execute(delete(intel_iocs).where(intel_iocs.c.id == ioc_id))
        change = Change(engine, before, changes.record(conn, [], [ioc_id]), removed=[ioc_id])
    _tell(change)
    return True


def purge_expired(engine: Engine, now: float, stopping: threading.Event | None = None) -> int:
    """Delete the indicators whose ``expires_at`` has passed (the maintenance chore
    ``expired_indicators``), a page at a time; how many went. Each page is logged as deletions
    (an index has dropped an expired indicator on its own at its ``expires_at``, see
    ``IocIndex.expire``; the entry changes nothing there)."""
    gone = 0
    while stopping is None or not stopping.is_set():
        with engine.begin() as conn:
            hold_writes(conn)
            before = changes.head(conn)
            ids = list(
                conn.execute(select(intel_iocs.c.id).where(intel_iocs.c.expires_at <= now).limit(PURGE_PAGE)).scalars()
            )
            if ids:
                conn.execute(delete(intel_iocs).where(intel_iocs.c.id.in_(ids)))
                change = Change(engine, before, changes.record(conn, [], ids), removed=ids)
        if ids:
            _tell(change)
        gone += len(ids)
        if len(ids) < PURGE_PAGE:
            break
    return gone


def active(engine: Engine, now: float) -> list[Indicator]:
    """Every indicator that has not expired."""
    with engine.connect() as conn:
        return active_in(conn, now)


def active_in(conn: Connection, now: float) -> list[Indicator]:
    """:func:`active` in the caller's transaction (the matcher reads it with the log's head)."""
    rows = conn.execute(
        select(intel_iocs).where(or_(intel_iocs.c.expires_at.is_(None), intel_iocs.c.expires_at > now))
    ).all()
    return [from_row(r) for r in rows]
