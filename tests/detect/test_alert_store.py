"""Storing findings: one alert per dedup key and window, folded in memory within a batch."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from agentwatch.alerts.recorder import store_findings
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate


def finding(i: int, ts: float, severity: int = 5) -> Finding:
    event = Event(body={}, event_id=f"e{i}", event_type="ai.request", ts=ts, received_at=ts)
    return Finding("atr", "rule-1", "Token flooding", severity, [event], alert_type="atr", dedup_key="host:a")


def test_many_findings_of_one_alert_in_a_batch(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    try:
        out = store_findings(engine, [finding(i, 1000.0 + i, severity=5 + (i == 3)) for i in range(5)], 300)
        assert [new for _, new in out] == [True, False, False, False, False]
        assert [a["count"] for a, _ in out] == [1, 2, 3, 4, 5]
        assert out[2][0]["event_ids"] == ["e0", "e1", "e2"]  # each answer is the alert as it was then
        with engine.connect() as conn:
            rows = conn.execute(select(alerts)).all()
        assert len(rows) == 1
        row = rows[0]
        assert (row.count, row.first_seen, row.last_seen, row.severity) == (5, 1000.0, 1004.0, 6)
        assert orjson.loads(row.body)["event_ids"] == ["e0", "e1", "e2", "e3", "e4"]
        # a later batch continues the same alert; past the window a new one opens
        store_findings(engine, [finding(5, 1100.0)], 300)
        store_findings(engine, [finding(6, 5000.0), finding(7, 5001.0)], 300)
        with engine.connect() as conn:
            counts = sorted(r.count for r in conn.execute(select(alerts.c.count)))
        assert counts == [2, 6]
    finally:
        engine.dispose()


def test_a_rule_id_longer_than_its_column_is_stored_cut_not_lost(database_url):
    """A plugin detector names its rules freely: an id past the column's 256 characters made
    PostgreSQL refuse the insert, and every alert of that batch was lost with it."""
    engine = make_engine(database_url)
    migrate(engine)
    try:
        event = Event(body={}, event_id="e1", event_type="ai.request", ts=1000.0, received_at=1000.0)
        long_id = "plugin." + "x" * 400
        found = Finding("plugin", long_id, "Long", 5, [event], alert_type="builtin", dedup_key="k")
        other = Finding("atr", "rule-1", "Short", 5, [event], alert_type="atr", dedup_key="k")
        out = store_findings(engine, [found, other, found], 300)
        assert [new for _, new in out] == [True, True, False]
        with engine.connect() as conn:
            ids = sorted(r.rule_id for r in conn.execute(select(alerts.c.rule_id)))
        assert ids == [long_id[:256], "rule-1"]
    finally:
        engine.dispose()
