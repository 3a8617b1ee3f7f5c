"""A breach notice remembers which of its targets accepted it (revision 0764): after one output
failed and another accepted, the retry goes to the failed one alone, also across two nodes; a
notice goes to the targets configured at its first attempt (an output removed since is not
waited for, one added since does not get it); the push to whoever is on call is a target too.
On both stores, to real webhook receivers on loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, update

from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.soc.sla import outbox, store
from agentwatch.soc.sla.schema import sla_events
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import alembic_config
from tests.push.fake_push import fake_push_service
from tests.push.helpers import KEY, PASSWORD, PushEnv
from tests.sla.notify_helpers import Receiver, old_alert, outputs_settings, receiver
from tests.support.server import run_server

HALF_HOUR = 1800.0  # a critical alert this old is 15 min past its acknowledge limit
LATER = 3600.0  # past the backoff of any attempt
SOC, ARCHIVE = outbox.output_key("soc"), outbox.output_key("archive")


def _aw(tmp_path: Path, database_url: str, soc: Receiver, archive: Receiver, outputs: list[str]) -> Agentwatch:
    """A node with the webhook outputs ``soc`` and ``archive``, breaches sent to ``outputs``."""
    urls = {"soc": soc.url, "archive": archive.url}
    return Agentwatch(outputs_settings(tmp_path, database_url, urls, notify_outputs=outputs))


def _notify(aw: Agentwatch, now: float) -> Any:
    return aw.components["sla"].notify_now(now)


def _notice(aw: Agentwatch, aid: str) -> dict[str, Any]:
    (event,) = store.list_events(aw.engine, store.EventQuery(alert_id=aid))[0]
    return event["notify"]


def _ids(got: Receiver) -> list[str]:
    return [n["alert_id"] for n in got.notices()]


async def test_a_retry_goes_only_to_the_output_that_failed(tmp_path: Path, database_url: str) -> None:
    with receiver() as soc, receiver() as archive:
        aw = _aw(tmp_path, database_url, soc, archive, ["soc", "archive"])
        try:
            first = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            archive.failing = True
            assert await _notify(aw, now) == 0
            assert _ids(soc) == [first] and archive.hits == 1
            state = _notice(aw, first)
            assert (state["state"], state["attempts"]) == ("waiting", 1)
            assert state["targets"] == [SOC, ARCHIVE] and state["done"] == [SOC]
            assert "webhook archive: receiver answered 503" in state["error"]
            assert "soc" not in state["error"].replace("archive", "")
            # a second breach, new to both outputs, is sent in the same pass as the retry
            second = old_alert(aw.engine, 9, HALF_HOUR)
            aw.components["sla"].pass_now(now + LATER)
            archive.failing = False
            assert await _notify(aw, now + LATER) == 2
            assert _ids(soc) == [first, second]  # no duplicate of the first
            assert len(soc.bodies) == 2  # each of its deliveries held only what it was owed
            assert sorted(_ids(archive)) == sorted([first, second])
            assert [len(b["alerts"]) for b in archive.bodies] == [2]
            for aid, attempts in ((first, 2), (second, 1)):
                state = _notice(aw, aid)
                assert (state["state"], state["attempts"], state["error"]) == ("sent", attempts, None)
                assert state["targets"] == [SOC, ARCHIVE] and sorted(state["done"]) == sorted([SOC, ARCHIVE])
            assert await _notify(aw, now + 2 * LATER) == 0
            assert len(soc.bodies) == 2 and len(archive.bodies) == 1
        finally:
            aw.engine.dispose()


async def test_an_output_failing_for_good_is_retried_alone_until_the_last_attempt(
    tmp_path: Path, database_url: str
) -> None:
    with receiver() as soc, receiver() as archive:
        aw = _aw(tmp_path, database_url, soc, archive, ["soc", "archive"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            archive.failing = True
            for i in range(outbox.MAX_ATTEMPTS + 2):
                await _notify(aw, now + i * 86_400)
            assert (soc.hits, archive.hits) == (1, outbox.MAX_ATTEMPTS)
            state = _notice(aw, aid)
            assert (state["state"], state["attempts"], state["done"]) == ("failed", outbox.MAX_ATTEMPTS, [SOC])
        finally:
            aw.engine.dispose()


async def test_two_nodes_retrying_together_send_each_notice_to_each_output_once(
    tmp_path: Path, database_url: str
) -> None:
    with receiver() as soc, receiver() as archive:
        one = _aw(tmp_path / "a", database_url, soc, archive, ["soc", "archive"])
        two = _aw(tmp_path / "b", database_url, soc, archive, ["soc", "archive"])
        try:
            ids = [old_alert(one.engine, 9, HALF_HOUR) for _ in range(20)]
            now = time.time()
            one.components["sla"].pass_now(now)
            archive.failing = True
            await asyncio.gather(_notify(one, now), _notify(two, now))
            assert sorted(_ids(soc)) == sorted(ids) and archive.bodies == []
            archive.failing = False
            for i in range(3):
                await asyncio.gather(_notify(one, now + LATER + i), _notify(two, now + LATER + i))
            assert sorted(_ids(soc)) == sorted(ids)  # each once: not sent again by the retries
            assert sorted(_ids(archive)) == sorted(ids)
            assert {_notice(one, aid)["state"] for aid in ids} == {"sent"}
        finally:
            one.engine.dispose()
            two.engine.dispose()


async def test_an_output_removed_after_a_partial_failure_is_not_waited_for(tmp_path: Path, database_url: str) -> None:
    with receiver() as soc, receiver() as archive:
        before = _aw(tmp_path / "a", database_url, soc, archive, ["soc", "archive"])
        after = _aw(tmp_path / "b", database_url, soc, archive, ["soc"])  # restarted without it
        try:
            aid = old_alert(before.engine, 9, HALF_HOUR)
            now = time.time()
            before.components["sla"].pass_now(now)
            archive.failing = True
            assert await _notify(before, now) == 0
            assert await _notify(after, now + LATER) == 1  # nothing left to send: done
            assert (len(soc.bodies), archive.hits) == (1, 1)
            state = _notice(after, aid)
            assert (state["state"], state["attempts"]) == ("sent", 2)
            assert state["targets"] == [SOC, ARCHIVE] and state["done"] == [SOC]
            assert state["error"] == "output:archive: no longer configured, not sent"
        finally:
            before.engine.dispose()
            after.engine.dispose()


async def test_an_output_added_after_the_first_attempt_gets_only_the_notices_not_attempted_yet(
    tmp_path: Path, database_url: str
) -> None:
    with receiver() as soc, receiver() as archive:
        before = _aw(tmp_path / "a", database_url, soc, archive, ["soc"])
        after = _aw(tmp_path / "b", database_url, soc, archive, ["soc", "archive"])  # restarted with it
        try:
            old = old_alert(before.engine, 9, HALF_HOUR)
            now = time.time()
            before.components["sla"].pass_now(now)
            soc.failing = True
            assert await _notify(before, now) == 0
            assert _notice(before, old)["targets"] == [SOC]
            new = old_alert(after.engine, 9, HALF_HOUR)
            after.components["sla"].pass_now(now + LATER)
            soc.failing = False
            assert await _notify(after, now + LATER) == 2
            assert sorted(_ids(soc)) == sorted([old, new])
            assert _ids(archive) == [new]  # the old notice's targets were fixed without it
            assert (_notice(after, old)["targets"], _notice(after, old)["done"]) == ([SOC], [SOC])
            assert _notice(after, new)["targets"] == [SOC, ARCHIVE]
        finally:
            before.engine.dispose()
            after.engine.dispose()


async def test_a_notice_claimed_without_targets_goes_to_those_configured_at_its_next_attempt(
    tmp_path: Path, database_url: str
) -> None:
    with receiver() as soc, receiver() as archive:
        aw = _aw(tmp_path, database_url, soc, archive, ["soc", "archive"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            assert len(outbox.claim(aw.engine, now, str(uuid.uuid4()), 10)) == 1  # then died
            assert _notice(aw, aid)["targets"] is None
            assert await _notify(aw, now + outbox.CLAIM_S + 1) == 1
            assert (_ids(soc), _ids(archive)) == ([aid], [aid])
        finally:
            aw.engine.dispose()


@pytest.mark.blank_database
async def test_a_notice_waiting_at_the_upgrade_goes_to_every_output_configured(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0763_sla_notify")
        events_0763 = Table("sla_events", MetaData(), autoload_with=engine)
        assert "notify_done" not in events_0763.c
    finally:
        engine.dispose()
    with receiver() as soc, receiver() as archive:
        aw = _aw(tmp_path, database_url, soc, archive, ["soc", "archive"])
        try:
            aid = old_alert(aw.engine, 9, HALF_HOUR)
            now = time.time()
            aw.components["sla"].pass_now(now)
            with aw.engine.begin() as conn:  # as 0763 left a notice that failed once
                conn.execute(
                    update(sla_events)
                    .where(sla_events.c.alert_id == aid)
                    .values(notify_attempts=1, notify_after=now, notify_error="webhook soc: timed out")
                )
            assert await _notify(aw, now) == 1
            assert (_ids(soc), _ids(archive)) == ([aid], [aid])
            assert _notice(aw, aid)["attempts"] == 2
        finally:
            aw.engine.dispose()


def _push_and_output_settings(data_dir: Path, database_url: str, url: str) -> Settings:
    """Authentication and push on, the webhook output ``soc`` at ``url``, breaches sent to it and
    pushed to whoever is on call in ``primary``, the watch every second."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={
            "atr_bundled": False,
            "pack": False,
            "outputs": [{"kind": "webhook", "name": "soc", "url": url}],
            "outputs_allow_private": True,
        },
        push={"allow_http": True, "allow_private": True},
        sla={"interval_s": 1.0, "notify_outputs": ["soc"], "notify_oncall": "primary"},
    )


def _wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_member_on_call_is_not_pushed_again_when_only_an_output_failed(tmp_path: Path, database_url: str) -> None:
    with receiver() as soc, fake_push_service() as fake:
        soc.failing = True
        settings = _push_and_output_settings(tmp_path, database_url, soc.url)
        with run_server(settings) as s, s.client() as c:
            s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
            token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
            admin = {"Authorization": f"Bearer {token['access_token']}"}
            fake.public_key = c.get(KEY, headers=admin).json()["public_key"]
            env = PushEnv(s, c, fake, admin)
            alice_id, alice = env.user("analyst")
            phone, _ = env.subscribe(alice, "alice-phone")
            start = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()
            member = s.aw.auth.users.get(alice_id).email
            rotation = {"name": "primary", "members": [member], "shift_hours": 12, "start": start}
            assert c.post("/api/v1/oncall/rotations", json=rotation, headers=admin).status_code == 201
            aid = old_alert(s.aw.engine, 9, HALF_HOUR)

            def notify() -> dict[str, Any]:
                events = c.get("/api/v1/sla/events", params={"alert_id": aid}, headers=admin).json()["events"]
                return events[0]["notify"] if events else {}  # none before the watch's next pass

            state = _wait_for(lambda: (n := notify()).get("attempts") == 1 and n["error"] and n, "the first attempt")
            assert (state["state"], state["done"]) == ("waiting", [outbox.ONCALL])
            assert state["targets"] == [SOC, outbox.ONCALL] and "webhook soc" in state["error"]
            assert len(phone.received) == 1 and soc.hits == 1
            soc.failing = False
            with s.aw.engine.begin() as conn:  # its backoff is over
                conn.execute(update(sla_events).where(sla_events.c.alert_id == aid).values(notify_after=0))
            state = _wait_for(lambda: (n := notify()).get("state") == "sent" and n, "the retry")
            time.sleep(1.5)  # another pass or two: nothing more is sent
            assert state["attempts"] == 2 and sorted(state["done"]) == sorted([SOC, outbox.ONCALL])
            assert _ids(soc) == [aid]
            assert len(phone.received) == 1 and fake.refused == []  # pushed once, not on the retry
