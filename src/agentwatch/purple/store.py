"""Stored executions of atomic tests and coverage snapshots: create, finish, read, list, delete.

An execution is finished by one conditional update (``WHERE status = 'running'``), so a
cancel and the runner's verdict never both win: whichever commits first stays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, false, func, or_, select, update

from agentwatch.alerts.recorder import change_alert
from agentwatch.events.model import iso
from agentwatch.purple.schema import purple_executions as ex
from agentwatch.purple.schema import purple_snapshots as snaps
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.snapshot import snapshot

RUNNING = "running"
FINISHED = ("passed", "failed", "cancelled")
VERDICTS = ("passed", "failed")  # a cancelled run says nothing about the detections
KEEP_PER_TEST = 500  # executions kept per test (the newest): the table stays bounded
MAX_RUN_ALERTS = 500  # alerts of one run read while waiting (a run sends at most 20 events)


def _when(value: float | None) -> str | None:
    return iso(value) if value is not None else None


def execution_json(row: Any) -> dict[str, Any]:
    ended = row.finished_at
    return {
        "id": row.id,
        "test_id": row.test_id,
        "status": row.status,
        "simulated": True,
        "session_id": row.session_id,
        "host": row.host,
        "requested_by": row.requested_by,
        "timeout_s": row.timeout_s,
        "created_at": iso(row.created_at),
        "events_at": _when(row.events_at),
        "finished_at": _when(ended),
        "duration_s": round(ended - row.created_at, 3) if ended is not None else None,
        "event_ids": orjson.loads(row.event_ids),
        "results": orjson.loads(row.results),
        "unexpected": orjson.loads(row.unexpected),
        "error": row.error,
    }


def create(engine: Engine, row: dict[str, Any], max_running: int) -> bool:
    """Store a new running execution unless ``max_running`` are running already (False then);
    past :data:`KEEP_PER_TEST` executions of its test (the new one counted), its oldest
    finished ones go (running ones stay: they cannot be deleted).
    The count and the insert are one writer's turn, so concurrent launches cannot all pass the
    count: SQLite's write lock is taken before the read, PostgreSQL's an advisory lock."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("purple:executions"))))
        else:
            conn.execute(update(ex).where(false()).values(status=ex.c.status))
        held = conn.execute(select(func.count()).select_from(ex).where(ex.c.status == RUNNING)).scalar_one()
        if int(held) >= max_running:
            return False
        conn.execute(ex.insert().values(**row))
        old = conn.execute(
            select(ex.c.id)
            .where(ex.c.test_id == row["test_id"], ex.c.status != RUNNING)
            .order_by(ex.c.created_at.desc(), ex.c.id.desc())
            .offset(KEEP_PER_TEST - 1)  # the new run is the KEEP_PER_TEST-th
        ).scalars()
        stale = list(old)
        if stale:
            conn.execute(delete(ex).where(ex.c.id.in_(stale)))
    return True


def mark_sent(engine: Engine, execution_id: str, event_ids: list[str], at: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(ex).where(ex.c.id == execution_id).values(event_ids=orjson.dumps(event_ids).decode(), events_at=at)
        )


def finish(
    engine: Engine,
    execution_id: str,
    status: str,
    results: list[dict[str, Any]] | None = None,
    unexpected: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> bool:
    """Record the verdict of a running execution; False when it was no longer running."""
    values: dict[str, Any] = {"status": status, "finished_at": time.time(), "error": error}
    if results is not None:
        values["results"] = orjson.dumps(results).decode()
    if unexpected is not None:
        values["unexpected"] = orjson.dumps(unexpected).decode()
    with engine.begin() as conn:
        done = conn.execute(update(ex).where(and_(ex.c.id == execution_id, ex.c.status == RUNNING)).values(**values))
    return done.rowcount == 1


def status(engine: Engine, execution_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(ex.c.status).where(ex.c.id == execution_id)).scalar_one_or_none()


def get(engine: Engine, execution_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(ex).where(ex.c.id == execution_id)).first()
    return None if row is None else execution_json(row)


def remove(engine: Engine, execution_id: str, finished_before: float) -> bool:
    """Delete an execution finished before ``finished_before`` (its events and alerts stay:
    they are history). One that finished later was still running when the caller asked, so
    the caller meant to cancel it, not to throw its verdict away: it stays."""
    cond = and_(ex.c.id == execution_id, ex.c.status != RUNNING, ex.c.finished_at < finished_before)
    with engine.begin() as conn:
        gone = conn.execute(delete(ex).where(cond))
    return gone.rowcount == 1


@dataclass
class ExecutionQuery:
    test_id: str | None = None
    status: str | None = None
    limit: int = 50
    cursor: tuple[float, str] | None = None


def search(engine: Engine, q: ExecutionQuery) -> tuple[list[dict[str, Any]], int, str | None]:
    cond = []
    if q.test_id:
        cond.append(ex.c.test_id == q.test_id)
    if q.status:
        cond.append(ex.c.status == q.status)
    stmt = select(ex).where(*cond)
    total_stmt = select(func.count()).select_from(ex).where(*cond)
    if q.cursor is not None:
        at, last = q.cursor
        stmt = stmt.where(or_(ex.c.created_at < at, and_(ex.c.created_at == at, ex.c.id < last)))
    stmt = stmt.order_by(ex.c.created_at.desc(), ex.c.id.desc()).limit(q.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = int(conn.execute(total_stmt).scalar_one())
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [execution_json(r) for r in rows], total, nxt


def latest_by_test(engine: Engine) -> dict[str, dict[str, Any]]:
    """The newest execution of each test that reached a verdict (passed or failed)."""
    newest = (
        select(ex.c.test_id, func.max(ex.c.created_at).label("at"))
        .where(ex.c.status.in_(VERDICTS))
        .group_by(ex.c.test_id)
        .subquery()
    )
    stmt = (
        select(ex.c.id, ex.c.test_id, ex.c.status, ex.c.finished_at, ex.c.created_at)
        .join(newest, and_(ex.c.test_id == newest.c.test_id, ex.c.created_at == newest.c.at))
        .where(ex.c.status.in_(VERDICTS))
        .order_by(ex.c.id)
    )
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            out[r.test_id] = {"execution_id": r.id, "status": r.status, "finished_at": _when(r.finished_at)}
    return out


def run_alerts(engine: Engine, session_id: str, event_ids: set[str]) -> list[dict[str, Any]]:
    """The alerts raised on a run's own events. They carry the run's session, but so can any
    event ingested by anyone (the session is a field of the event): an alert counts only when
    one of the run's simulated events is among its events."""
    stmt = (
        select(alerts.c.id, alerts.c.type, alerts.c.rule_id, alerts.c.body)
        .where(alerts.c.session_id == session_id)
        .order_by(alerts.c.created_at, alerts.c.id)
        .limit(MAX_RUN_ALERTS)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for r in rows:
        if event_ids.intersection(orjson.loads(r.body).get("event_ids") or ()):
            out.append({"id": r.id, "type": r.type, "rule_id": r.rule_id})
    return out


def close_run_alerts(engine: Engine, session_id: str, event_ids: set[str]) -> int:
    """Close the open alerts raised only on the run's own simulated events, so that nobody
    triages them as real and no SLA target runs on them; how many. An alert that also holds
    an event from elsewhere (ingested with the run's session) stays as it is."""
    stmt = select(alerts.c.id, alerts.c.body).where(alerts.c.session_id == session_id, alerts.c.status != "closed")
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(MAX_RUN_ALERTS)).all()
    closed = 0
    for r in rows:
        held = set(orjson.loads(r.body).get("event_ids") or ())
        if held and held <= event_ids and change_alert(engine, r.id, {"status": "closed"}):
            closed += 1
    return closed


def interrupt_stale(engine: Engine, grace_s: float) -> int:
    """Fail the runs left ``running`` by a server that stopped before their verdict: those
    still running ``grace_s`` past their own deadline (created + timeout)."""
    now = time.time()
    with engine.begin() as conn:
        done = conn.execute(
            update(ex)
            .where(and_(ex.c.status == RUNNING, ex.c.created_at + ex.c.timeout_s + grace_s < now))
            .values(status="failed", finished_at=now, error="interrupted: the server stopped during the run")
        )
    return done.rowcount or 0


# -- coverage snapshots ------------------------------------------------------------------


def snapshot_json(row: Any) -> dict[str, Any]:
    techniques = orjson.loads(row.techniques)
    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "label": row.label,
        "rules": row.rules,
        "techniques": techniques,
        "techniques_covered": len(techniques),
        "tests": orjson.loads(row.tests),
    }


def add_snapshot(engine: Engine, row: dict[str, Any], keep: int) -> None:
    """Store a snapshot; past ``keep`` snapshots the oldest go."""
    with engine.begin() as conn:
        conn.execute(snaps.insert().values(**row))
        old = conn.execute(
            select(snaps.c.id).order_by(snaps.c.created_at.desc(), snaps.c.id.desc()).offset(keep)
        ).scalars()
        stale = list(old)
        if stale:
            conn.execute(delete(snaps).where(snaps.c.id.in_(stale)))


def list_snapshots(engine: Engine, limit: int) -> tuple[list[dict[str, Any]], int]:
    with snapshot(engine) as conn:
        rows = conn.execute(select(snaps).order_by(snaps.c.created_at.desc(), snaps.c.id.desc()).limit(limit)).all()
        total = int(conn.execute(select(func.count()).select_from(snaps)).scalar_one())
    return [snapshot_json(r) for r in rows], total


def get_snapshot(engine: Engine, snapshot_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(snaps).where(snaps.c.id == snapshot_id)).first()
    return None if row is None else snapshot_json(row)


def last_two(engine: Engine) -> list[dict[str, Any]]:
    """The two newest snapshots, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(snaps).order_by(snaps.c.created_at.desc(), snaps.c.id.desc()).limit(2)).all()
    return [snapshot_json(r) for r in rows]
