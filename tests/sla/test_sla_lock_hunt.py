"""A pass with much to record (a first pass over a store full of old alerts) must not hold
SQLite's one write lock from its first write to its end: ingest waits for that lock (at most
30 s, then fails). Each page of the pass commits on its own, so another writer gets the lock
between two pages. And two nodes passing at once (on SQLite and PostgreSQL) record each breach
once, without failing."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from agentwatch.soc.sla import evaluate, store
from agentwatch.soc.sla.schema import sla_events
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate


def _alerts(n: int, made: float) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "dedup_key": f"k{i}",
            "type": "atr",
            "detector": "d",
            "rule_id": "r",
            "title": "t",
            "message": "",
            "severity": 9,
            "status": "open",
            "first_seen": made,
            "last_seen": made,
            "created_at": made,
            "updated_at": made,
            "count": 1,
            "entity_ids": "",
            "tags": "[]",
            "body": "{}",
        }
        for i in range(n)
    ]


def test_another_writer_gets_the_lock_between_two_pages_of_a_pass(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    store.targets(engine)
    now = time.time()
    n = evaluate.PAGE * 2 + 10  # critical, made an hour ago: an acknowledge breach each
    with engine.begin() as conn:
        conn.execute(alerts.insert(), _alerts(n, now - 3600))
    probes: list[bool] = []
    other = sqlite3.connect(tmp_path / "store.db", timeout=0)

    def probe(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # each search for breaches to record: could another writer take the lock now?
        if statement.lstrip().upper().startswith("SELECT") and "NOT (EXISTS" in statement:
            try:
                other.execute("BEGIN IMMEDIATE")
                other.rollback()
                probes.append(True)
            except sqlite3.OperationalError:
                probes.append(False)

    event.listen(engine, "before_cursor_execute", probe)
    try:
        assert evaluate.sweep(engine, now, 30 * 86_400.0) == n
    finally:
        event.remove(engine, "before_cursor_execute", probe)
        other.close()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sla_events)).scalar_one() == n
    engine.dispose()
    assert len(probes) >= 3 and all(probes), probes


def test_two_nodes_passing_at_once_record_each_breach_once(database_url: str) -> None:
    # two engines on one store, as two nodes: both passes at the same time, over 300 critical
    # alerts made an hour ago (acknowledge due after 15 min): 300 breaches, no failure
    first, second = make_engine(database_url), make_engine(database_url)
    migrate(first)
    store.targets(first)
    now = time.time()
    with first.begin() as conn:
        conn.execute(alerts.insert(), _alerts(300, now - 3600))
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def node(engine: Any) -> None:
        start.wait()
        try:
            evaluate.sweep(engine, now, 30 * 86_400.0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=node, args=(e,)) for e in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with first.connect() as conn:
        rows = conn.execute(select(sla_events.c.alert_id, sla_events.c.kind)).all()
    assert len(rows) == 300 and {k for _, k in rows} == {"acknowledge"} and len({a for a, _ in rows}) == 300
    first.dispose()
    second.dispose()
