"""The tenant's running scan, kept in the store so every process and node sharing it agrees.

``serve --processes N`` and scale-out API nodes each hold their own memory; "one running scan
per tenant" therefore lives in ``discovery_scan_slots``: one row per tenant whose ``scan_id``
is set by a single conditional UPDATE (exactly one of two simultaneous claims changes the row,
on SQLite and PostgreSQL alike). The owning process refreshes ``heartbeat_at`` and the progress
every ``BEAT_S``; a slot whose heartbeat is older than ``STALE_S`` lost its process (killed,
out of memory) and is taken over, its scan ended ``interrupted``.

Every function here does blocking database work: call it in a thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, or_, select, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from agentwatch.discovery.report import scan_result
from agentwatch.discovery.schema import scan_slots as slots_t
from agentwatch.discovery.schema import scans as scans_t
from agentwatch.events.model import iso

BEAT_S = 0.5  # how often the owner refreshes its slot and looks for a stop request
STALE_S = 10.0  # a slot not refreshed for this long lost its process
INTERRUPTED = "interrupted: the process running the scan stopped"


@dataclass(frozen=True)
class Claim:
    """What a new scan writes into its tenant's slot."""

    tenant: str
    scan_id: str
    owner: str
    target: str
    detectors: list[str]
    started_at: float
    hosts_total: int


class Taken(Exception):
    """The slot is held by a live scan (``scan_id``), or it is not the schedule's turn (None)."""

    def __init__(self, scan_id: str | None) -> None:
        super().__init__(scan_id)
        self.scan_id = scan_id


def _ensure_row(engine: Engine, tenant: str) -> None:
    """The tenant's slot row exists (idle) before any claim; a concurrent insert loses quietly."""
    with engine.connect() as conn:
        if conn.execute(select(slots_t.c.tenant).where(slots_t.c.tenant == tenant)).first() is not None:
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(slots_t).values(tenant=tenant, stop_requested=0))
    except IntegrityError:
        pass  # another process made it first


def _read(engine: Engine, tenant: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(slots_t).where(slots_t.c.tenant == tenant)).mappings().first()


def _live(row: Any, now: float) -> bool:
    return row is not None and row["scan_id"] is not None and (row["heartbeat_at"] or 0.0) >= now - STALE_S


def claim(engine: Engine, new: Claim, *, every: float | None = None) -> None:
    """Make ``new`` the tenant's running scan and write its ``running`` row, or raise ``Taken``.

    With ``every`` (the schedule) the claim also needs the schedule's last start to be at least
    a period ago, so the processes of one server start one scheduled scan per period between them.
    """
    _ensure_row(engine, new.tenant)
    now = time.time()
    row = _read(engine, new.tenant)
    if _live(row, now):
        raise Taken(row["scan_id"])
    stale = row["scan_id"]
    held = slots_t.c.scan_id.is_(None) if stale is None else _stale_condition(stale, now)
    turn: Any = true()
    if every is not None:
        # a twentieth of the period absorbs the clocks of nodes not quite agreeing
        turn = or_(slots_t.c.scheduled_at.is_(None), slots_t.c.scheduled_at <= now - every * 0.95)
    values: dict[str, Any] = {
        "scan_id": new.scan_id,
        "owner": new.owner,
        "target": new.target,
        "detectors": orjson.dumps(new.detectors).decode(),
        "started_at": new.started_at,
        "heartbeat_at": now,
        "stop_requested": 0,
        "hosts_done": 0,
        "hosts_total": new.hosts_total,
        "agents_found": 0,
    }
    if every is not None:
        values["scheduled_at"] = now
    with engine.begin() as conn:
        won = conn.execute(update(slots_t).where(slots_t.c.tenant == new.tenant, held, turn).values(**values))
        if won.rowcount == 1:
            if stale is not None:
                _interrupt(conn, stale, now)
            conn.execute(
                insert(scans_t).values(
                    scan_id=new.scan_id,
                    tenant=new.tenant,
                    started_at=new.started_at,
                    target=new.target,
                    status="running",
                    body="{}",
                )
            )
            return
    current = _read(engine, new.tenant)
    raise Taken(current["scan_id"] if _live(current, time.time()) else None)


def _stale_condition(scan_id: str, now: float) -> Any:
    return and_(slots_t.c.scan_id == scan_id, slots_t.c.heartbeat_at < now - STALE_S)


def _interrupt(conn: Any, scan_id: str, now: float) -> None:
    """End the row of a scan whose process died: ``interrupted``, with the reason as its error."""
    row = conn.execute(select(scans_t).where(scans_t.c.scan_id == scan_id)).mappings().first()
    if row is None or row["status"] != "running":
        return
    result = scan_result(
        scan_id=scan_id, started_at=row["started_at"], completed_at=now, target=row["target"],
        agents=[], detectors=[], status="interrupted", stats={}, error=INTERRUPTED,
    )  # fmt: skip
    conn.execute(
        update(scans_t)
        .where(scans_t.c.scan_id == scan_id, scans_t.c.status == "running")
        .values(completed_at=now, status="interrupted", total_agents=0, body=orjson.dumps(result).decode())
    )


def sweep(engine: Engine, tenant: str) -> None:
    """Free the tenant's slot if its process died, ending that scan ``interrupted``."""
    now = time.time()
    row = _read(engine, tenant)
    if row is None or row["scan_id"] is None or _live(row, now):
        return
    with engine.begin() as conn:
        freed = conn.execute(
            update(slots_t)
            .where(slots_t.c.tenant == tenant, _stale_condition(row["scan_id"], now))
            .values(scan_id=None, owner=None, stop_requested=0)
        )
        if freed.rowcount == 1:
            _interrupt(conn, row["scan_id"], now)


def beat(engine: Engine, tenant: str, scan_id: str, owner: str, progress: dict[str, int]) -> bool | None:
    """Refresh the owner's heartbeat and progress. True: a stop was requested; None: the slot was
    lost (taken over after the process stalled past ``STALE_S``); False: carry on."""
    with engine.begin() as conn:
        kept = conn.execute(
            update(slots_t)
            .where(slots_t.c.tenant == tenant, slots_t.c.scan_id == scan_id, slots_t.c.owner == owner)
            .values(heartbeat_at=time.time(), **progress)
        )
        if kept.rowcount != 1:
            return None
        return bool(conn.execute(select(slots_t.c.stop_requested).where(slots_t.c.tenant == tenant)).scalar())


def release(conn: Any, tenant: str, scan_id: str) -> None:
    """Free the slot in the transaction that writes the scan's result (so idle means written)."""
    conn.execute(
        update(slots_t)
        .where(slots_t.c.tenant == tenant, slots_t.c.scan_id == scan_id)
        .values(scan_id=None, owner=None, stop_requested=0)
    )


def request_stop(engine: Engine, tenant: str) -> str | None:
    """Ask the owner of the tenant's live scan to stop it; the scan's id, or None when idle."""
    now = time.time()
    with engine.begin() as conn:
        asked = conn.execute(
            update(slots_t)
            .where(
                slots_t.c.tenant == tenant,
                slots_t.c.scan_id.is_not(None),
                slots_t.c.heartbeat_at >= now - STALE_S,
            )
            .values(stop_requested=1)
        )
        if asked.rowcount != 1:
            return None
        return conn.execute(select(slots_t.c.scan_id).where(slots_t.c.tenant == tenant)).scalar()


def running_scan(engine: Engine, tenant: str) -> str | None:
    """The id of the tenant's live scan, or None."""
    row = _read(engine, tenant)
    return row["scan_id"] if _live(row, time.time()) else None


def scanner_health(engine: Engine) -> dict[str, Any]:
    """What every process reports as its scanner in ``/api/health``: the live scans of all tenants
    and the latest scan that completed, read from the store (the same on every process)."""
    now = time.time()
    with engine.connect() as conn:
        live = conn.execute(
            select(func.count())
            .select_from(slots_t)
            .where(slots_t.c.scan_id.is_not(None), slots_t.c.heartbeat_at >= now - STALE_S)
        ).scalar_one()
        last = conn.execute(
            select(scans_t.c.scan_id, scans_t.c.completed_at)
            .where(scans_t.c.status == "completed")
            .order_by(scans_t.c.completed_at.desc())
            .limit(1)
        ).first()
    return {
        "running_scans": live,
        "last_scan_id": last.scan_id if last is not None else None,
        "last_scan_completed_at": iso(last.completed_at) if last is not None else None,
    }


def status(engine: Engine, tenant: str) -> dict[str, Any] | None:
    """The documented ``running`` status of the tenant's live scan, or None (a dead one is swept)."""
    row = _read(engine, tenant)
    if row is None or row["scan_id"] is None:
        return None
    if not _live(row, time.time()):
        sweep(engine, tenant)
        return None
    return {
        "scan_id": row["scan_id"],
        "target_network": row["target"],
        "detectors": orjson.loads(row["detectors"] or "[]"),
        "started_at": iso(row["started_at"]),
        "progress": {
            "hosts_done": row["hosts_done"],
            "hosts_total": row["hosts_total"],
            "agents_found": row["agents_found"],
        },
    }
