"""A pass of the SLA watch reads the alerts it watches through indexes: the range of
``created_at`` (``ix_alerts_created``, revision 0761) and the running breaches, never a scan
of the whole alerts table, which grows with every alert ever raised."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import event, inspect

from agentwatch.soc.sla import evaluate, store
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate


def test_the_alerts_created_index_exists_on_both_stores(engine) -> None:
    names = {ix["name"] for ix in inspect(engine).get_indexes("alerts")}
    assert "ix_alerts_created" in names


def test_no_query_of_a_pass_scans_the_alerts_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    try:
        assert any(t.enabled for t, _who in store.targets(engine).values())
        seen: list[tuple[str, object]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def keep(_conn, _cur, statement, parameters, _ctx, _many) -> None:  # noqa: ANN001
            if "alerts" in statement and not statement.startswith("EXPLAIN"):
                seen.append((statement, parameters))

        evaluate.sweep(engine, time.time(), 30 * 86_400.0)
        assert any("alerts.created_at" in s for s, _ in seen)
        with engine.connect() as conn:
            for statement, parameters in seen:
                plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                assert not any(step.startswith("SCAN alerts") for step in plan), (statement, plan)
    finally:
        engine.dispose()
