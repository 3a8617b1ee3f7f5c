"""Playbooks and their runs in the store.

A playbook's name is unique (a second one of the same name is refused). A run is stored when
it starts (status ``running``) and completed when it ends; an automatic run carries
``auto_key`` (playbook and alert), unique, so a second start of the same playbook on the same
alert finds the first and does nothing. Each playbook keeps its newest
``playbooks.max_runs_per_playbook`` runs.

While a run is ``running`` its process refreshes its heartbeat (:func:`beat`, which also records
the results of the steps ended so far); :func:`sweep_stale` ends the runs whose heartbeat lapsed
``interrupted``. Every change of a run's status is conditional on the status it leaves, so of a
sweep and the run's own completion (a process back from a long pause), or of two sweepers, one
only acts, and a swept run never turns back into another status.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.soc.playbooks.schema import playbook_runs, playbooks

PRINCIPAL_WIDTH = playbooks.c.created_by.type.length
RUNNING = "running"
INTERRUPTED = "interrupted"


class NameTaken(ValueError):
    """Another playbook has this name."""


class Full(ValueError):
    """The store holds ``playbooks.max_playbooks`` playbooks already."""


def _playbook(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "enabled": bool(row.enabled),
        "trigger": orjson.loads(row.trigger),
        "requires_approval": bool(row.requires_approval),
        "steps": orjson.loads(row.steps),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": doc["name"],
        "description": doc["description"],
        "enabled": doc["enabled"],
        "trigger": orjson.dumps(doc["trigger"]).decode(),
        "requires_approval": doc["requires_approval"],
        "steps": orjson.dumps(doc["steps"]).decode(),
    }


def _name_taken(engine: Engine, name: str, but: str | None = None) -> bool:
    stmt = select(playbooks.c.id).where(playbooks.c.name == name)
    if but is not None:
        stmt = stmt.where(playbooks.c.id != but)
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def _hold_writes(conn: Connection) -> None:
    """Be the one creator of playbooks until ``conn``'s transaction ends, so the count checked
    against ``playbooks.max_playbooks`` is the count written onto (SQLite: the write lock, taken
    by a write that changes nothing before the count is read)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(0x706C6179, 0)))  # "play"
    else:
        conn.execute(update(playbooks).where(false()).values(updated_at=playbooks.c.updated_at))


def create(engine: Engine, doc: dict[str, Any], principal: str, max_total: int) -> str:
    """Store a new playbook (a parsed document); its id. Raises NameTaken, Full."""
    if _name_taken(engine, doc["name"]):
        raise NameTaken(doc["name"])
    now = time.time()
    pid = str(uuid.uuid4())
    try:
        with engine.begin() as conn:
            _hold_writes(conn)
            if int(conn.execute(select(func.count()).select_from(playbooks)).scalar_one()) >= max_total:
                raise Full(str(max_total))
            conn.execute(
                playbooks.insert().values(
                    id=pid, **_values(doc), created_by=principal[:PRINCIPAL_WIDTH], created_at=now, updated_at=now
                )
            )
    except IntegrityError:  # created meanwhile by another request
        raise NameTaken(doc["name"]) from None
    return pid


def replace(engine: Engine, pid: str, doc: dict[str, Any]) -> bool:
    """Replace the playbook's document; False when there is no such playbook. Raises NameTaken."""
    if _name_taken(engine, doc["name"], but=pid):
        raise NameTaken(doc["name"])
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(playbooks).where(playbooks.c.id == pid).values(**_values(doc), updated_at=time.time())
            )
    except IntegrityError:
        raise NameTaken(doc["name"]) from None
    return done.rowcount == 1


def remove(engine: Engine, pid: str) -> bool:
    """Delete the playbook and its runs; False when there is no such playbook."""
    with engine.begin() as conn:
        gone = conn.execute(delete(playbooks).where(playbooks.c.id == pid)).rowcount == 1
        if gone:
            conn.execute(delete(playbook_runs).where(playbook_runs.c.playbook_id == pid))
    return gone


def get(engine: Engine, pid: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(playbooks).where(playbooks.c.id == pid)).first()
    return None if row is None else _playbook(row)


def existing(engine: Engine, ids: list[str]) -> set[str]:
    """Those of ``ids`` that are playbooks (not deleted)."""
    found: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            found.update(
                conn.execute(select(playbooks.c.id).where(playbooks.c.id.in_(ids[start : start + 500]))).scalars()
            )
    return found


def list_page(engine: Engine, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """(playbooks oldest first, total)."""
    order = (playbooks.c.created_at, playbooks.c.id)
    with engine.connect() as conn:
        rows = conn.execute(select(playbooks).order_by(*order).offset(offset).limit(limit)).all()
        total = int(conn.execute(select(func.count()).select_from(playbooks)).scalar_one())
    return [_playbook(r) for r in rows], total


def automatic(engine: Engine) -> list[dict[str, Any]]:
    """The enabled playbooks with an ``alert`` trigger."""
    with engine.connect() as conn:
        rows = conn.execute(select(playbooks).where(playbooks.c.enabled.is_(True)).order_by(playbooks.c.created_at))
        found = [_playbook(r) for r in rows]
    return [p for p in found if p["trigger"].get("type") == "alert"]


# -- runs ---------------------------------------------------------------------------------------


def start_run(
    engine: Engine,
    playbook_id: str,
    alert_id: str,
    *,
    dry_run: bool,
    trigger: str,
    started_by: str,
    held_by: str | None = None,
    also: Callable[[Connection, str], None] | None = None,
) -> tuple[str, float] | None:
    """Store a run as ``running`` (``awaiting_approval`` when ``held_by`` names the approval
    request it waits for; ``also`` stores that request in the same transaction): (its id, its
    start time); None when the playbook is gone (deleted after it was read: no run row may
    outlive it) or when it is an automatic run of this playbook on this alert that was started
    before."""
    run_id, now = str(uuid.uuid4()), time.time()
    auto_key = f"{playbook_id}:{alert_id}" if trigger == "automatic" else None
    try:
        with engine.begin() as conn:
            if conn.execute(select(playbooks.c.id).where(playbooks.c.id == playbook_id)).first() is None:
                return None
            conn.execute(
                playbook_runs.insert().values(
                    id=run_id,
                    playbook_id=playbook_id,
                    alert_id=alert_id,
                    dry_run=dry_run,
                    trigger=trigger,
                    started_by=started_by[:PRINCIPAL_WIDTH],
                    status=RUNNING if held_by is None else "awaiting_approval",
                    auto_key=auto_key,
                    steps="[]",
                    started_at=now,
                    heartbeat_at=now if held_by is None else None,
                    approval_id=held_by,
                )
            )
            if also is not None:
                also(conn, run_id)
    except IntegrityError:
        return None
    return run_id, now


def move_held(conn: Connection, run_id: str, *, start: bool) -> bool:
    """In ``conn``'s transaction, move a run from ``awaiting_approval`` to ``running`` (``start``)
    or end it ``cancelled``; False when it is not waiting (any more): only one caller ever
    starts or ends a held run."""
    now = time.time()
    values = (
        {"status": RUNNING, "started_at": now, "heartbeat_at": now}
        if start
        else {"status": "cancelled", "finished_at": now}
    )
    done = conn.execute(
        update(playbook_runs)
        .where(playbook_runs.c.id == run_id, playbook_runs.c.status == "awaiting_approval")
        .values(**values)
    )
    return done.rowcount == 1


def cancel_run(engine: Engine, run_id: str) -> bool:
    """End a run still ``awaiting_approval`` as ``cancelled`` (its request was rejected or expired)."""
    with engine.begin() as conn:
        return move_held(conn, run_id, start=False)


def beat(engine: Engine, run_id: str, steps: list[dict] | None = None) -> bool:
    """The running run's heartbeat: its process is alive now; ``steps``, when given, are the
    results of the steps ended so far, kept should the process die. False when the run is no
    longer ``running`` (swept meanwhile, or deleted with its playbook): nothing was written."""
    values: dict[str, Any] = {"heartbeat_at": time.time()}
    if steps is not None:
        values["steps"] = orjson.dumps(steps).decode()
    with engine.begin() as conn:
        done = conn.execute(
            update(playbook_runs)
            .where(playbook_runs.c.id == run_id, playbook_runs.c.status == RUNNING)
            .values(**values)
        )
    return done.rowcount == 1


def finish_run(
    engine: Engine,
    run_id: str,
    playbook_id: str,
    status: str,
    steps: list[dict],
    keep: int,
    reason: str | None = None,
) -> bool:
    """Complete the run if it is still ``running`` (``reason``: why it ended, when its steps did
    not end it); drop the playbook's runs past the newest ``keep``. False when it was not running
    any more: a sweep ended it ``interrupted`` while its process was paused past
    ``playbooks.stale_run_s`` (that record stands), or it was deleted with its playbook."""
    with engine.begin() as conn:
        done = conn.execute(
            update(playbook_runs)
            .where(playbook_runs.c.id == run_id, playbook_runs.c.status == RUNNING)
            .values(status=status, steps=orjson.dumps(steps).decode(), finished_at=time.time(), reason=reason)
        )
        c = playbook_runs.c
        cut = conn.execute(
            select(c.started_at, c.id)
            .where(c.playbook_id == playbook_id)
            .order_by(c.started_at.desc(), c.id.desc())
            .offset(keep)
            .limit(1)
        ).first()
        if cut is not None:
            older = or_(c.started_at < cut.started_at, and_(c.started_at == cut.started_at, c.id <= cut.id))
            conn.execute(delete(playbook_runs).where(c.playbook_id == playbook_id, older))
    return done.rowcount == 1


def _lapsed(before: float) -> ColumnElement[bool]:
    """Running, and no heartbeat since ``before`` (a row with none, stored by a node of an
    older version, counts from its start)."""
    c = playbook_runs.c
    beat_at = or_(c.heartbeat_at < before, and_(c.heartbeat_at.is_(None), c.started_at < before))
    return and_(c.status == RUNNING, beat_at)


def sweep_stale(
    engine: Engine,
    before: float,
    reason: str,
    also: Callable[[Connection, dict[str, Any]], bool] | None = None,
    limit: int = 500,
) -> list[tuple[dict[str, Any], bool]]:
    """End ``interrupted`` (now, ``reason`` recorded, the step results recorded so far kept)
    each running run whose last heartbeat is older than ``before``, at most ``limit``; each as
    (the run, what ``also`` answered for it). ``also`` acts on a run in the transaction that
    ends it. Each run is one conditional update: a run whose process beat meanwhile, or that
    another sweeper or its own completion ended first, is left as it is and not listed."""
    c = playbook_runs.c
    with engine.connect() as conn:
        ids = conn.execute(select(c.id).where(_lapsed(before)).order_by(c.started_at).limit(limit)).scalars().all()
    ended = []
    for run_id in ids:
        with engine.begin() as conn:
            done = conn.execute(
                update(playbook_runs)
                .where(c.id == run_id, _lapsed(before))
                .values(status=INTERRUPTED, finished_at=time.time(), reason=reason)
            )
            if done.rowcount != 1:
                continue
            run = _run(conn.execute(select(playbook_runs).where(c.id == run_id)).one())
            ended.append((run, also(conn, run) if also is not None else False))
    return ended


def _run(row: Any) -> dict[str, Any]:
    finished = row.finished_at
    beat_at = row.heartbeat_at
    return {
        "id": row.id,
        "playbook_id": row.playbook_id,
        "alert_id": row.alert_id,
        "dry_run": bool(row.dry_run),
        "trigger": row.trigger,
        "started_by": row.started_by,
        "status": row.status,
        "approval_id": row.approval_id,
        "steps": orjson.loads(row.steps),
        "reason": row.reason,
        "started_at": iso(row.started_at),
        "heartbeat_at": iso(beat_at) if beat_at is not None else None,
        "finished_at": iso(finished) if finished is not None else None,
        "duration_ms": round((finished - row.started_at) * 1000, 3) if finished is not None else None,
    }


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(playbook_runs).where(playbook_runs.c.id == run_id)).first()
    return None if row is None else _run(row)


def list_runs(engine: Engine, playbook_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """(the playbook's runs newest first, total)."""
    c = playbook_runs.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(playbook_runs)
            .where(c.playbook_id == playbook_id)
            .order_by(c.started_at.desc(), c.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
        total = int(conn.execute(select(func.count()).where(c.playbook_id == playbook_id)).scalar_one())
    return [_run(r) for r in rows], total
