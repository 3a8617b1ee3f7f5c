"""The SLA watch records breaches by itself every ``sla.interval_s``, and the SLA routes ask
for their permissions: reads ``alerts:read``, changing a target ``settings:write``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from agentwatch.config import Settings
from agentwatch.store.alerts_schema import alerts
from tests.soc.helpers import AuthServer, auth_server, make_alert
from tests.support.server import open_settings, run_server


def test_the_watch_records_a_breach_on_its_own(database_url: str, tmp_path: Path) -> None:
    settings = open_settings(tmp_path, database_url)
    settings = settings.model_copy(update={"sla": settings.sla.model_copy(update={"interval_s": 1.0})})
    with run_server(settings) as s, s.client() as c:
        aid = make_alert(s.aw.engine, 9)
        made = time.time() - 1800  # critical: 15 min to acknowledge, due 15 min ago
        with s.aw.engine.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == aid).values(created_at=made))
        deadline = time.monotonic() + 10
        found: list[dict] = []
        while not found and time.monotonic() < deadline:
            found = c.get("/api/v1/sla/events", params={"alert_id": aid}).json()["events"]
            time.sleep(0.2)
        assert [(e["kind"], e["limit_minutes"]) for e in found] == [("acknowledge", 15)]


@pytest.fixture(scope="module")
def authed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as a:
        yield a


def test_reading_needs_alerts_read_and_changing_needs_settings_write(authed: AuthServer) -> None:
    c = authed.client
    assert c.get("/api/v1/sla/configs").status_code == 401
    assert c.get("/api/v1/sla/events").status_code == 401
    assert c.put("/api/v1/sla/configs/high", json={"enabled": False}).status_code == 401
    _, reader = authed.key("alerts:read")
    assert c.get("/api/v1/sla/configs", headers=reader).status_code == 200
    assert c.get("/api/v1/sla/events", headers=reader).status_code == 200
    assert c.put("/api/v1/sla/configs/high", json={"enabled": False}, headers=reader).status_code == 403
    _, other = authed.key("settings:read", "alerts:write")
    assert c.get("/api/v1/sla/configs", headers=other).status_code == 403
    _, writer = authed.key("settings:write")
    r = c.put("/api/v1/sla/configs/high", json={"acknowledge_minutes": 45}, headers=writer)
    assert r.status_code == 200, r.text
    assert r.json()["acknowledge_minutes"] == 45 and r.json()["updated_by"].startswith("api_key:")


def test_settings_bounds() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Settings(sla={"interval_s": 0.5})
    with pytest.raises(ValueError, match="max_age_days"):
        Settings(sla={"max_age_days": 0})
