"""A store upgraded from revision 0762_sla_lives keeps its breaches, marked as recorded while
no notice was sent (``off``): turning notices on sends none of that history, only the breaches
recorded since."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, Table

from agentwatch.app import Agentwatch
from agentwatch.soc.sla import store
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import alembic_config
from tests.sla.notify_helpers import notify_settings, old_alert, receiver


@pytest.mark.blank_database
async def test_breaches_recorded_before_the_upgrade_are_not_sent(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0762_sla_lives")
        now = time.time()
        events_0762 = Table("sla_events", MetaData(), autoload_with=engine)
        assert "notify_state" not in events_0762.c
        with engine.begin() as conn:
            conn.execute(
                events_0762.insert().values(
                    id=str(uuid.uuid4()),
                    alert_id="before",
                    kind="acknowledge",
                    band="critical",
                    severity=9,
                    limit_minutes=15,
                    started_at=now - 3600,
                    due_at=now - 2700,
                    breached_at=now - 2700,
                )
            )
    finally:
        engine.dispose()
    with receiver() as got:
        aw = Agentwatch(notify_settings(tmp_path, database_url, got.url, notify_outputs=["soc"]))
        try:
            (before,) = store.list_events(aw.engine, store.EventQuery(alert_id="before"))[0]
            off = {"state": "off", "attempts": 0, "sent_at": None, "error": None, "targets": None, "done": []}
            assert before["notify"] == off
            aid = old_alert(aw.engine, 9, 1800)
            aw.components["sla"].pass_now(now)
            assert await aw.components["sla"].notify_now(now) == 1
            assert [n["alert_id"] for n in got.notices()] == [aid]
        finally:
            aw.engine.dispose()
