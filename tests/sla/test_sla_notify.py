"""Breach notices through the alert outputs (``sla.notify_outputs``), on both stores, to a real
webhook receiver on loopback: sent once, once across two nodes, again after a failure (with
backoff) and after a node died holding the claim; never for a simulated alert, a disabled band,
or while notifications are off; a misspelt output name refused at start."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.soc.sla import outbox, store
from agentwatch.store.alerts_schema import alerts
from tests.sla.notify_helpers import Receiver, notify_settings, old_alert, receiver
from tests.support.server import run_server

HALF_HOUR = 1800.0  # a critical alert this old is 15 min past its acknowledge limit (15 min)


def _events(aw: Agentwatch, aid: str) -> list[dict[str, Any]]:
    return store.list_events(aw.engine, store.EventQuery(alert_id=aid))[0]


async def _notify(aw: Agentwatch, now: float | None = None) -> int:
    return await aw.components["sla"].notify_now(now)


def _aw(tmp_path: Path, database_url: str, got: Receiver | None, **sla: Any) -> Agentwatch:
    return Agentwatch(notify_settings(tmp_path, database_url, got.url if got else None, **sla))


async def test_a_breach_is_sent_once_with_what_breached(tmp_path: Path, database_url: str) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got, notify_outputs=["soc"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            assert await _notify(aw, now) == 1
            assert await _notify(aw, now + 7200) == 0  # sent: never again
            assert len(got.bodies) == 1 and got.bodies[0]["source"] == "agentwatch"
            (notice,) = got.notices()
            assert notice["alert_id"] == aid
            assert (notice["kind"], notice["band"], notice["limit_minutes"]) == ("acknowledge", "critical", 15)
            assert (notice["severity"], notice["severity_label"]) == (9, "critical")
            with aw.engine.connect() as conn:
                title = conn.execute(select(alerts.c.title).where(alerts.c.id == aid)).scalar_one()
            assert notice["alert_title"] == title and title in notice["title"]
            assert 895 <= notice["over_s"] <= 905  # due 15 min after its creation, 30 min ago
            assert "not acknowledged within 15 min" in notice["message"]
            (event,) = _events(aw, aid)
            assert notice["id"] == event["id"]  # receivers deduplicate by the breach's id
            assert event["notify"]["state"] == "sent" and event["notify"]["attempts"] == 1
            assert event["notify"]["error"] is None and event["notify"]["sent_at"] is not None
        finally:
            aw.engine.dispose()


async def test_two_nodes_on_one_store_send_a_breach_once(tmp_path: Path, database_url: str) -> None:
    with receiver() as got:
        first = _aw(tmp_path / "a", database_url, got, notify_outputs=["soc"])
        second = _aw(tmp_path / "b", database_url, got, notify_outputs=["soc"])
        try:
            ids = [old_alert(first.engine, 9, HALF_HOUR) for _ in range(20)]
            now = time.time()
            first.components["sla"].pass_now(now)
            second.components["sla"].pass_now(now)
            for _ in range(3):
                await asyncio.gather(_notify(first, now), _notify(second, now))
            assert sorted(n["alert_id"] for n in got.notices()) == sorted(ids)
        finally:
            first.engine.dispose()
            second.engine.dispose()


async def test_a_failing_receiver_gets_the_breach_again_once_it_recovers(tmp_path: Path, database_url: str) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got, notify_outputs=["soc"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            got.failing = True
            assert await _notify(aw, now) == 0
            (event,) = _events(aw, aid)
            assert event["notify"]["state"] == "waiting" and event["notify"]["attempts"] == 1
            assert "webhook soc: receiver answered 503" in event["notify"]["error"]
            got.failing = False
            assert await _notify(aw, now + 5) == 0  # backing off: not asked again at once
            assert got.hits == 1
            assert await _notify(aw, now + 3600) == 1
            assert [n["alert_id"] for n in got.notices()] == [aid]
            (event,) = _events(aw, aid)
            assert event["notify"]["state"] == "sent" and event["notify"]["attempts"] == 2
            assert event["notify"]["error"] is None
        finally:
            aw.engine.dispose()


async def test_a_receiver_failing_for_good_is_given_up_after_the_last_attempt(
    tmp_path: Path, database_url: str
) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got, notify_outputs=["soc"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            got.failing = True
            for i in range(outbox.MAX_ATTEMPTS + 2):
                await _notify(aw, now + i * 86_400)
            assert got.hits == outbox.MAX_ATTEMPTS
            (event,) = _events(aw, aid)
            assert event["notify"]["state"] == "failed" and event["notify"]["attempts"] == outbox.MAX_ATTEMPTS
        finally:
            aw.engine.dispose()


async def test_a_claim_of_a_node_that_died_mid_send_expires(tmp_path: Path, database_url: str) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got, notify_outputs=["soc"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            dead = outbox.claim(aw.engine, now, str(uuid.uuid4()), 10)  # claimed, never finished
            assert [c.alert_id for c in dead] == [aid]
            assert await _notify(aw, now + 10) == 0  # still claimed
            assert await _notify(aw, now + outbox.CLAIM_S + 1) == 1
            assert [n["alert_id"] for n in got.notices()] == [aid]
        finally:
            aw.engine.dispose()


async def test_simulated_alerts_disabled_bands_and_ended_breaches_are_not_notified(
    tmp_path: Path, database_url: str
) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got, notify_outputs=["soc"])
        try:
            purple = old_alert(aw.engine, 9, HALF_HOUR, tags='["purple-team", "simulated"]')
            high = old_alert(aw.engine, 7, 3 * 3600)  # high: 60 min to acknowledge
            handled = old_alert(aw.engine, 9, HALF_HOUR)
            real = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            store.change(aw.engine, "high", {"enabled": False}, "test")  # after the breach was recorded
            with aw.engine.begin() as conn:  # acknowledged late, before its notice went out
                conn.execute(update(alerts).where(alerts.c.id == handled).values(status="acknowledged", updated_at=now))
            aw.components["sla"].pass_now(now + 1)
            assert await _notify(aw, now + 1) == 1
            assert [n["alert_id"] for n in got.notices()] == [real]
            assert [e["notify"]["state"] for e in _events(aw, purple)] == ["simulated"]
            assert [e["notify"]["state"] for e in _events(aw, high)] == ["disabled"]
            assert [e["notify"]["state"] for e in _events(aw, handled)] == ["ended"]
            assert got.hits == 1
        finally:
            aw.engine.dispose()


async def test_nothing_is_sent_by_default(tmp_path: Path, database_url: str) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got)  # the output exists; sla names none
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            assert await _notify(aw, now) == 0
            assert got.hits == 0
            assert [e["notify"]["state"] for e in _events(aw, aid)] == ["off"]
        finally:
            aw.engine.dispose()


async def test_a_pass_sends_a_bounded_batch(tmp_path: Path, database_url: str) -> None:
    with receiver() as got:
        aw = _aw(tmp_path, database_url, got, notify_outputs=["soc"])
        try:
            for _ in range(outbox.BATCH + 5):
                old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            assert await _notify(aw, now) == outbox.BATCH
            assert await _notify(aw, now) == 5
            assert len(got.notices()) == outbox.BATCH + 5
        finally:
            aw.engine.dispose()


def test_a_misspelt_output_name_is_refused_at_start(tmp_path: Path, database_url: str) -> None:
    refused = r"sla\.notify_outputs: 'sco' names no output of detection\.outputs \(known: 'soc'\)"
    with pytest.raises(ValueError, match=refused):  # when the settings are read
        notify_settings(tmp_path, database_url, "http://127.0.0.1:9/hook", notify_outputs=["sco"])
    # and by the server, for settings changed in code without being validated again
    good = notify_settings(tmp_path, database_url, "http://127.0.0.1:9/hook")
    with pytest.raises(ValueError, match=refused):
        Agentwatch(good.model_copy(update={"sla": good.sla.model_copy(update={"notify_outputs": ["sco"]})}))


def test_notify_settings_bounds() -> None:
    with pytest.raises(ValueError, match="notify_outputs"):
        Settings(sla={"notify_outputs": ["x" * 65]})
    with pytest.raises(ValueError, match="notify_outputs"):
        Settings(sla={"notify_outputs": ["a"] * 17})
    with pytest.raises(ValueError, match="notify_outputs"):
        Settings(sla={"notify_outputs": ["soc", "soc"]})
    with pytest.raises(ValueError, match="notify_oncall"):
        Settings(sla={"notify_oncall": ""})
    with pytest.raises(ValueError, match="notify_oncall"):
        Settings(sla={"notify_oncall": "r" * 129})


def test_a_breach_recorded_by_a_target_change_waits_for_its_notice(tmp_path: Path, database_url: str) -> None:
    # changing a target first records the breaches due under the current one: those too are
    # to be notified (the watch itself sleeps for an hour after its first pass)
    with receiver() as got:
        settings = notify_settings(tmp_path, database_url, got.url, notify_outputs=["soc"], interval_s=3600)
        with run_server(settings) as s, s.client() as c:
            time.sleep(0.5)  # the watch's first pass, before the alert exists
            aid = old_alert(s.aw.engine, 9, HALF_HOUR)
            r = c.put("/api/v1/sla/configs/critical", json={"resolve_minutes": 300})
            assert r.status_code == 200, r.text
            events = c.get("/api/v1/sla/events", params={"alert_id": aid}).json()["events"]
            assert [(e["kind"], e["notify"]["state"]) for e in events] == [("acknowledge", "waiting")]
