"""Lives of an alert on the store itself (SQLite and PostgreSQL): two nodes passing at once over
reopened alerts record each life's breach once, and a store upgraded from revision
0761_sla_alert_age keeps its breaches and marks as the first life of their alerts."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, event, func, select, update

from agentwatch.soc.sla import evaluate, store
from agentwatch.soc.sla.schema import sla_events, sla_marks
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import alembic_config, migrate

DAY = 86_400.0


def _alert(made: float, status: str = "open", updated: float | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "dedup_key": uuid.uuid4().hex,
        "type": "atr",
        "detector": "d",
        "rule_id": "r",
        "title": "t",
        "message": "",
        "severity": 9,  # critical: 15 min to acknowledge, 240 to resolve
        "status": status,
        "first_seen": made,
        "last_seen": made,
        "created_at": made,
        "updated_at": made if updated is None else updated,
        "count": 1,
        "entity_ids": "",
        "tags": "[]",
        "body": "{}",
    }


def test_two_nodes_passing_at_once_record_each_life_once(database_url: str) -> None:
    # 200 critical alerts made two hours ago, closed an hour late: one acknowledge breach each
    # (ended). Reopened 30 min ago: two nodes passing at once both see the reopening; each
    # alert gets one more acknowledge breach (its second life's), never two, and no pass fails
    first, second = make_engine(database_url), make_engine(database_url)
    try:
        migrate(first)
        store.targets(first)
        now = time.time()
        rows = [_alert(now - 7200, "closed", now - 3600) for _ in range(200)]
        ids = [r["id"] for r in rows]
        with first.begin() as conn:
            conn.execute(alerts.insert(), rows)
        assert evaluate.sweep(first, now, 30 * DAY) == 200
        with first.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id.in_(ids)).values(status="open", updated_at=now - 1800))
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def node(engine: Any) -> None:
            start.wait()
            try:
                for _ in range(3):
                    evaluate.sweep(engine, now, 30 * DAY)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=node, args=(e,)) for e in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        e = sla_events.c
        with first.connect() as conn:
            got = conn.execute(select(e.alert_id, e.kind, e.started_at, e.ended_at).where(e.alert_id.in_(ids))).all()
        assert len(got) == 400
        assert {(r.kind, r.started_at) for r in got} == {("acknowledge", now - 7200), ("acknowledge", now - 1800)}
        for aid in ids:
            mine = sorted((r.started_at, r.ended_at) for r in got if r.alert_id == aid)
            assert mine == [(now - 7200, now - 3600), (now - 1800, None)]
    finally:
        first.dispose()
        second.dispose()


def test_an_alert_reopened_after_the_watched_age_is_watched_again(engine: Any) -> None:
    # made 40 days ago (past sla.max_age_days 30) and closed then, late: reopened 30 min ago,
    # its new life is inside the watched period and breaches (acknowledge due 15 min after)
    store.targets(engine)
    now = time.time()
    made = now - 40 * DAY
    row = _alert(made)
    with engine.begin() as conn:
        conn.execute(alerts.insert().values(row))
    assert evaluate.sweep(engine, made + 3600, 30 * DAY) == 1
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(status="closed", updated_at=made + 7200))
    evaluate.sweep(engine, made + 7300, 30 * DAY)
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(status="open", updated_at=now - 1800))
    assert evaluate.sweep(engine, now, 30 * DAY) == 1
    e = sla_events.c
    with engine.connect() as conn:
        got = sorted(conn.execute(select(e.started_at, e.due_at, e.ended_at).where(e.alert_id == row["id"])).all())
    assert got == [(made, made + 900, made + 7200), (now - 1800, now - 900, None)]


def test_a_node_late_to_see_a_reopening_leaves_the_new_life_running(database_url: str) -> None:
    # node B reads the reopened alert, then node A starts its new life and records that
    # life's breach (running) before B writes: B must end only the breaches of the life that
    # ended, not the new one
    node_a, node_b = make_engine(database_url), make_engine(database_url)
    try:
        migrate(node_a)
        store.targets(node_a)
        now = time.time()
        row = _alert(now - 7200, "closed", now - 3600)
        with node_a.begin() as conn:
            conn.execute(alerts.insert().values(row))
        assert evaluate.sweep(node_a, now, 30 * DAY) == 1
        with node_a.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(status="open", updated_at=now - 1800))
        overtaken: list[int] = []

        def a_first(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("UPDATE SLA_EVENTS") and not overtaken:
                overtaken.append(evaluate.sweep(node_a, now, 30 * DAY))

        event.listen(node_b, "before_cursor_execute", a_first)
        try:
            evaluate.sweep(node_b, now, 30 * DAY)
        finally:
            event.remove(node_b, "before_cursor_execute", a_first)
        assert overtaken == [1]
        e = sla_events.c
        with node_a.connect() as conn:
            got = sorted(conn.execute(select(e.started_at, e.ended_at).where(e.alert_id == row["id"])).all())
        assert got == [(now - 7200, now - 3600), (now - 1800, None)]
    finally:
        node_a.dispose()
        node_b.dispose()


@pytest.mark.blank_database
def test_an_upgraded_store_keeps_its_breaches_as_the_first_life(database_url: str) -> None:
    # at 0761: an alert with a recorded (ended) acknowledge breach and its marks, and a mark
    # whose alert is gone. After the upgrade a pass records no second breach for that life,
    # drops the orphan mark, and the alert, reopened, can breach again
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0761_sla_alert_age")
        now = float(int(time.time()))
        old = _alert(now - 7200, "closed", now - 3600)
        events_0761 = Table("sla_events", MetaData(), autoload_with=engine)
        marks_0761 = Table("sla_marks", MetaData(), autoload_with=engine)
        assert "started_at" not in marks_0761.c
        with engine.begin() as conn:
            conn.execute(alerts.insert().values(old))
            conn.execute(
                marks_0761.insert(),
                [
                    {"alert_id": old["id"], "acknowledged_at": now - 3600, "closed_at": now - 3600},
                    {"alert_id": "gone", "acknowledged_at": now - 5000, "closed_at": None},
                ],
            )
            conn.execute(
                events_0761.insert().values(
                    id=str(uuid.uuid5(evaluate.EVENT_NS, f"{old['id']}\x1facknowledge")),
                    alert_id=old["id"],
                    kind="acknowledge",
                    band="critical",
                    severity=9,
                    limit_minutes=15,
                    started_at=now - 7200,
                    due_at=now - 6300,
                    breached_at=now - 6300,
                    ended_at=now - 3600,
                    end_reason="acknowledged",
                )
            )
        migrate(engine)
        with engine.connect() as conn:
            marks = {r.alert_id: r.started_at for r in conn.execute(select(sla_marks))}
        assert marks == {old["id"]: now - 7200, "gone": None}
        assert evaluate.sweep(engine, now, 30 * DAY) == 0
        with engine.connect() as conn:
            assert conn.execute(select(sla_marks.c.alert_id)).scalars().all() == [old["id"]]
            assert conn.execute(select(func.count()).select_from(sla_events)).scalar_one() == 1
        with engine.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == old["id"]).values(status="open", updated_at=now - 1800))
        assert evaluate.sweep(engine, now, 30 * DAY) == 1
        with engine.connect() as conn:
            starts = conn.execute(select(sla_events.c.started_at).order_by(sla_events.c.started_at)).scalars().all()
        assert starts == [now - 7200, now - 1800]
    finally:
        engine.dispose()
