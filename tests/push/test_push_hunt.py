"""Defects found by attacking Web Push, on SQLite and PostgreSQL: the VAPID key of a cluster,
the same browser registered by two users, and a flood of alerts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from agentwatch.soc.push.service import MAX_ALERT_PUSHES
from agentwatch.soc.push.vapid import KEY_FILE, load_or_create
from tests.push.helpers import SUBS, TEST, PushEnv, push_env

pytestmark = pytest.mark.xdist_group("push_hunt")


def test_every_node_of_a_cluster_signs_with_the_same_key(engine: Engine, tmp_path: Path) -> None:
    """Two nodes share the database, not a data_dir: a key per node would make every push sent
    by the other node refused (the browser subscribed with the first node's key)."""
    first = load_or_create(engine, tmp_path / "node1")
    second = load_or_create(engine, tmp_path / "node2")
    assert second.private_numbers() == first.private_numbers()


def test_nodes_starting_at_once_agree_on_one_key(engine: Engine, tmp_path: Path) -> None:
    keys: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def node(i: int) -> None:
        try:
            start.wait()
            keys.append(load_or_create(engine, tmp_path / f"node{i}").private_numbers().private_value)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(keys) == 6 and len(set(keys)) == 1


def test_a_key_file_of_an_earlier_version_is_taken_over(engine: Engine, tmp_path: Path) -> None:
    """Browsers subscribed with the key of data_dir/push_vapid.pem keep working after the upgrade."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    old = ec.generate_private_key(ec.SECP256R1())
    pem = old.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / KEY_FILE).write_bytes(pem)
    assert load_or_create(engine, tmp_path).private_numbers() == old.private_numbers()
    assert load_or_create(engine, tmp_path / "other").private_numbers() == old.private_numbers()


@pytest.fixture(scope="module")
def env(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushEnv]:
    with push_env(tmp_path_factory.mktemp("data"), module_database_url, min_severity=7, timeout_s=1.0) as e:
        yield e


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_a_browser_shared_by_two_users_gets_each_alert_once(env: PushEnv) -> None:
    """One browser profile used by two responders in turn: both registered its subscription."""
    _, alice = env.user("analyst")
    _, bob = env.user("analyst")
    shared, made = env.subscribe(alice, "shared-browser")
    again = env.client.post(SUBS, json=shared.subscription(), headers=bob)
    assert again.status_code == 201 and again.json()["id"] != made["id"]
    alert = {"title": "shared", "severity": 9, "rule_id": "hunt-s"}
    r = env.client.post("/api/v1/alerts", json=alert, headers=env.admin)
    assert r.status_code == 201, r.text
    wait_for(lambda: len(shared.received) >= 1)
    time.sleep(0.3)  # a second copy would come in the same delivery
    assert [g["payload"]["alert_id"] for g in shared.received] == [r.json()["id"]]


def test_another_user_registering_my_endpoint_neither_takes_nor_breaks_it(env: PushEnv) -> None:
    _, alice = env.user("analyst")
    _, mallory = env.user("analyst")
    dev, made = env.subscribe(alice, "alice-target")
    forged = env.fake.device("mallory-keys").subscription()
    forged["endpoint"] = dev.endpoint  # alice's endpoint with mallory's keys
    assert env.client.post(SUBS, json=forged, headers=mallory).status_code == 201
    (mine,) = env.client.get(SUBS, headers=alice).json()["subscriptions"]
    assert mine["id"] == made["id"]
    assert env.client.delete(f"{SUBS}/{made['id']}", headers=mallory).status_code == 404
    assert env.client.post(TEST, headers=alice).json()["sent"] == 1
    assert dev.received[-1]["payload"]["type"] == "test"  # still encrypted with alice's keys


def test_a_flood_of_alerts_is_summed_up_per_device(env: PushEnv) -> None:
    """A batch of alerts is at most a few notifications per device, the rest summed up in one:
    a hundred pushes to each phone would take past the delivery's time limit and be useless."""
    _, carol = env.user("viewer")
    dev, _ = env.subscribe(carol, "carol-flood")
    service = env.server.aw.components["push"]
    alerts = [{"id": f"flood-{i}", "title": f"alert {i}", "severity": 7 + i % 3} for i in range(40)]
    asyncio.run(service.push_alerts(alerts))
    mine = [g["payload"] for g in dev.received]
    assert len(mine) == MAX_ALERT_PUSHES + 1
    assert all(p["type"] == "alert" and p["severity"] == 9 for p in mine[:-1])  # the most severe first
    assert mine[-1] == {
        "type": "alerts",
        "count": 40 - MAX_ALERT_PUSHES,
        "title": f"{40 - MAX_ALERT_PUSHES} more alerts",
        "severity": 9,
    }


def test_an_unanswering_push_service_is_tried_once_per_delivery_and_holds_nobody_back(env: PushEnv) -> None:
    _, erin = env.user("viewer")
    slow, made = env.subscribe(erin, "erin-slow")
    fast, _ = env.subscribe(erin, "erin-fast")
    slow.delay_s = 4.0  # past push.timeout_s (1 s)
    service = env.server.aw.components["push"]
    alerts = [{"id": f"slow-{i}", "title": f"slow {i}", "severity": 8} for i in range(4)]
    started = time.monotonic()
    results = asyncio.run(service.push_alerts(alerts))
    took = time.monotonic() - started
    assert slow.hits == 1  # not once per alert: four time limits would pass the delivery's own
    assert [g["payload"]["alert_id"] for g in fast.received] == [f"slow-{i}" for i in range(4)]
    mine = [r for r in results if r["id"] == made["id"]]
    assert len(mine) == 4 and mine[0]["error"] == "push service timed out after 1 s"
    assert all(r["error"].startswith("not sent: an earlier push of this delivery failed") for r in mine[1:])
    assert took < 3.5
    assert env.client.delete(f"{SUBS}/{made['id']}", headers=erin).status_code == 204
