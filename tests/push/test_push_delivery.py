"""Web Push delivered to a fake push service on loopback, on SQLite and PostgreSQL: VAPID-signed
(checked with the key agentwatch serves), encrypted per RFC 8291 (decrypted with the device's
own keys), and what the push service answers acted upon."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwatch.soc.push.vapid import KEY_FILE
from tests.push.fake_push import fake_push_service
from tests.push.helpers import KEY, SUBS, TEST, PushEnv, push_env

pytestmark = pytest.mark.xdist_group("push_delivery")


@pytest.fixture(scope="module")
def env(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushEnv]:
    with push_env(tmp_path_factory.mktemp("data"), module_database_url, min_severity=7) as e:
        yield e


def wait_for(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_the_vapid_key_is_made_once_and_kept_private(env: PushEnv) -> None:
    assert not (Path(env.server.aw.settings.data_dir) / KEY_FILE).exists()  # in the store, shared by nodes
    first = env.client.get(KEY, headers=env.admin).json()["public_key"]
    assert env.client.get(KEY, headers=env.admin).json()["public_key"] == first == env.fake.public_key
    assert len(first) == 87  # 65 bytes, base64url without padding
    assert "PRIVATE" not in repr(env.server.aw.components["push"].vapid)


def test_a_test_push_is_signed_and_encrypted_for_each_subscription(env: PushEnv) -> None:
    _, alice = env.user("analyst")
    phone, made = env.subscribe(alice, "alice-phone", device_name="Pixel")
    laptop, _ = env.subscribe(alice, "alice-laptop")
    assert made["device_name"] == "Pixel" and made["last_status"] is None
    r = env.client.post(TEST, headers=alice)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["sent"] == 2
    assert [(x["device_name"], x["status"], x["ok"]) for x in doc["results"]] == [
        ("Pixel", 201, True),
        (None, 201, True),
    ]
    assert env.fake.refused == []
    for dev in (phone, laptop):
        (got,) = dev.received
        assert got["payload"]["type"] == "test"
        assert got["claims"]["aud"] == env.fake.origin
        assert got["claims"]["sub"] == "mailto:agentwatch@localhost"
        assert got["claims"]["exp"] <= time.time() + 24 * 3600
        assert got["urgency"] == "normal" and got["ttl"] == 3600
    listed = env.client.get(SUBS, headers=alice).json()["subscriptions"]
    assert [s["last_status"] for s in listed] == [201, 201]
    assert all("keys" not in s and "auth" not in s for s in listed)


def test_registering_the_same_endpoint_again_updates_it(env: PushEnv) -> None:
    _, alice = env.user("analyst")
    dev, made = env.subscribe(alice, "alice-tablet")
    again = env.client.post(SUBS, json=dev.subscription(device_name="Tablet"), headers=alice)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == made["id"] and again.json()["device_name"] == "Tablet"
    assert len(env.client.get(SUBS, headers=alice).json()["subscriptions"]) == 1


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_push_service_calls_gone_is_removed(env: PushEnv, status: int) -> None:
    _, bob = env.user("viewer")
    dev, made = env.subscribe(bob, f"bob-gone-{status}")
    dev.answer = (status, {}, b"")
    (result,) = env.client.post(TEST, headers=bob).json()["results"]
    assert (result["id"], result["status"], result["removed"], result["ok"]) == (made["id"], status, True, False)
    assert env.client.get(SUBS, headers=bob).json()["subscriptions"] == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_push_service_refusing_the_vapid_token_is_reported_and_kept(env: PushEnv, status: int) -> None:
    _, bob = env.user("viewer")
    dev, made = env.subscribe(bob, f"bob-refused-{status}")
    dev.answer = (status, {}, b"bad jwt")
    (result,) = env.client.post(TEST, headers=bob).json()["results"]
    assert (result["status"], result["ok"], result["removed"]) == (status, False, False)
    assert result["error"] == f"push service answered {status}"
    assert [s["last_status"] for s in env.client.get(SUBS, headers=bob).json()["subscriptions"]] == [status]


def test_a_large_answer_is_read_only_up_to_the_bound(env: PushEnv) -> None:
    _, bob = env.user("viewer")
    dev, _ = env.subscribe(bob, "bob-chatty")
    dev.answer = (201, {}, b"x" * (2 * 1024 * 1024))
    (result,) = env.client.post(TEST, headers=bob).json()["results"]
    assert (result["status"], result["ok"]) == (201, True)


def test_429_holds_pushes_to_that_service_for_its_retry_after(env: PushEnv) -> None:
    _, carol = env.user("viewer")
    with fake_push_service() as busy:  # its own origin: the wait is per push service
        busy.public_key = env.fake.public_key
        dev = busy.device("carol-busy")
        assert env.client.post(SUBS, json=dev.subscription(), headers=carol).status_code == 201
        dev.answer = (429, {"Retry-After": "120"}, b"")
        (first,) = env.client.post(TEST, headers=carol).json()["results"]
        assert (first["status"], first["retry_after_s"], first["ok"]) == (429, 120, False)
        dev.answer = (201, {}, b"")
        (second,) = env.client.post(TEST, headers=carol).json()["results"]
        assert dev.hits == 1  # not asked again before its Retry-After
        assert second["status"] is None and second["error"].startswith("push service asked to wait")
        assert 115 <= second["retry_after_s"] <= 120
    _, dave = env.user("viewer")
    other, _ = env.subscribe(dave, "dave-other-service")
    assert env.client.post(TEST, headers=dave).json()["sent"] == 1  # another service is not held


def test_new_alerts_are_pushed_to_users_who_may_read_alerts(env: PushEnv) -> None:
    _, reader = env.user("viewer")
    reader_dev, _ = env.subscribe(reader, "reader-phone")
    demoted_id, demoted = env.user("analyst")
    demoted_dev, _ = env.subscribe(demoted, "demoted-phone")
    disabled_id, disabled = env.user("analyst")
    disabled_dev, _ = env.subscribe(disabled, "disabled-phone")
    env.server.aw.auth.users.update(demoted_id, role="ingest")  # no longer holds alerts:read
    env.server.aw.auth.users.update(disabled_id, disabled=True)
    low = env.client.post(
        "/api/v1/alerts", json={"title": "minor thing", "severity": 3, "rule_id": "push-low"}, headers=env.admin
    )
    high = env.client.post(
        "/api/v1/alerts",
        json={"title": "Prompt injection", "severity": 8, "rule_id": "push-high", "description": "secret detail"},
        headers=env.admin,
    )
    assert low.status_code == high.status_code == 201, high.text
    high_id = high.json()["id"]
    wait_for(lambda: len(reader_dev.received) >= 1)
    (got,) = reader_dev.received
    assert got["payload"] == {"type": "alert", "alert_id": high_id, "title": "Prompt injection", "severity": 8}
    assert got["urgency"] == "high"
    time.sleep(0.3)  # the other two would have been pushed in the same delivery
    assert demoted_dev.received == [] and disabled_dev.received == []
    assert len(reader_dev.received) == 1  # the minor alert is below push.min_severity


ROUTES = [("GET", KEY), ("GET", SUBS), ("POST", SUBS), ("DELETE", f"{SUBS}/00000000-0000-4000-8000-000000000000")]


def test_every_route_needs_a_credential_and_alerts_read(env: PushEnv) -> None:
    made = env.client.post("/api/v1/api-keys", headers=env.admin, json={"name": "k", "scopes": ["events:read"]})
    no_alerts = {"X-API-Key": made.json()["key"]}
    _, ingest = env.user("ingest")
    for method, path in [*ROUTES, ("POST", TEST)]:
        assert env.client.request(method, path).status_code == 401, path
        assert env.client.request(method, path, headers=no_alerts).status_code == 403, path
        assert env.client.request(method, path, headers=ingest).status_code == 403, path


def test_another_users_subscription_is_neither_listed_tested_nor_removed(env: PushEnv) -> None:
    _, alice = env.user("analyst")
    _, bob = env.user("analyst")
    dev, made = env.subscribe(alice, "alice-private")
    assert env.client.get(SUBS, headers=bob).json()["subscriptions"] == []
    assert env.client.post(TEST, headers=bob).json()["results"] == []
    assert dev.hits == 0
    r = env.client.delete(f"{SUBS}/{made['id']}", headers=bob)
    assert r.status_code == 404, r.text
    assert [s["id"] for s in env.client.get(SUBS, headers=alice).json()["subscriptions"]] == [made["id"]]
    assert env.client.delete(f"{SUBS}/{made['id']}", headers=env.admin).status_code == 204  # an admin: anyone's
    assert env.client.get(SUBS, headers=alice).json()["subscriptions"] == []


def test_an_api_key_acts_for_the_user_who_owns_it(env: PushEnv) -> None:
    _, alice = env.user("analyst")
    key = env.client.post("/api/v1/api-keys", headers=alice, json={"name": "pwa", "scopes": ["alerts:read"]})
    assert key.status_code == 201, key.text
    as_key = {"X-API-Key": key.json()["key"]}
    dev = env.fake.device("alice-by-key")
    made = env.client.post(SUBS, json=dev.subscription(), headers=as_key)
    assert made.status_code == 201, made.text
    assert [s["id"] for s in env.client.get(SUBS, headers=alice).json()["subscriptions"]] == [made.json()["id"]]
    assert env.client.post(TEST, headers=as_key).json()["sent"] == 1
    assert env.client.delete(f"{SUBS}/{made.json()['id']}", headers=as_key).status_code == 204
