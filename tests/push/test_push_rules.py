"""What ``POST /api/v1/push/subscriptions`` refuses, with the default (strict) push settings, on
SQLite and PostgreSQL: endpoints that are not https or reach a non-public address, malformed
keys, bodies too large, more subscriptions than allowed; and ids that are not there."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.push.helpers import SUBS, TEST
from tests.support.server import RunningServer, open_settings, run_server

pytestmark = pytest.mark.xdist_group("push_rules")
PUBLIC = "https://93.184.215.14/push/"  # a public address, written as one: never resolved, never contacted


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def point() -> bytes:
    key = ec.derive_private_key(0x5EED, ec.SECP256R1())  # fixed: test ids must match across workers
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def body(endpoint: str = PUBLIC + "a", **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"endpoint": endpoint, "keys": {"p256dh": b64(point()), "auth": b64(os.urandom(16))}}
    doc.update(over)
    return doc


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    settings = settings.model_copy(update={"push": settings.push.model_copy(update={"max_subscriptions_per_user": 3})})
    with run_server(settings) as s:
        yield s


@pytest.fixture
def c(srv: RunningServer) -> Iterator[Any]:
    """A client, with no subscription left over from another test (all share the one owner)."""
    with srv.client() as client:
        for sub in client.get(SUBS).json()["subscriptions"]:
            assert client.delete(f"{SUBS}/{sub['id']}").status_code == 204
        yield client


def refused(c: Any, doc: Any, field: str) -> str:
    r = c.post(SUBS, json=doc)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith(f"{field}: "), message
    return message


def test_a_public_https_endpoint_is_registered(c: Any) -> None:
    r = c.post(SUBS, json=body(expirationTime=(time.time() + 86400) * 1000, device_name="iPhone"))
    assert r.status_code == 201, r.text
    assert r.json()["device_name"] == "iPhone" and r.json()["endpoint"] == PUBLIC + "a"
    assert [s["id"] for s in c.get(SUBS).json()["subscriptions"]] == [r.json()["id"]]


def test_a_plain_http_endpoint_is_refused(c: Any) -> None:
    message = refused(c, body("http://93.184.215.14/push/a"), "endpoint")
    assert "scheme must be one of https" in message


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.0.0.1:9/push/a",
        "https://10.1.2.3/push/a",
        "https://[::1]/push/a",
        "https://169.254.169.254/latest/meta-data",
        "https://2130706433/push/a",  # 127.0.0.1 written as a decimal
    ],
)
def test_an_endpoint_at_a_non_public_address_is_refused(c: Any, endpoint: str) -> None:
    assert "refused" in refused(c, body(endpoint), "endpoint")


def test_an_endpoint_with_credentials_is_refused(c: Any) -> None:
    refused(c, body("https://user:pw@93.184.215.14/push/a"), "endpoint")


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("p256dh", b64(point()[:64]), "uncompressed P-256 point"),  # wrong length
        ("p256dh", b64(point() + b"\x00"), "uncompressed P-256 point"),
        ("p256dh", "BAD$KEY!" * 10, "base64url"),
        ("p256dh", b64(b"\x04" + b"\x01" * 64), "not a point on the P-256 curve"),
        ("p256dh", b64(b"\x02" + point()[1:33] + b"\x00" * 32), "uncompressed P-256 point"),  # compressed form
        ("auth", b64(b"a" * 15), "must be 16 bytes"),
        ("auth", b64(b"a" * 32), "must be 16 bytes"),
        ("auth", "not base64!!", "base64url"),
        ("auth", "", "at least 1 character"),
    ],
)
def test_malformed_keys_are_refused(c: Any, field: str, value: str, rule: str) -> None:
    doc = body()
    doc["keys"][field] = value
    assert rule in refused(c, doc, f"keys.{field}")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"endpoint": PUBLIC + "a"}, "keys"),
        ({"keys": body()["keys"]}, "endpoint"),
        (body(endpoint="https://93.184.215.14/" + "a" * 2048), "endpoint"),
        (body(expirationTime=1000.0), "expirationTime"),
        (body(expirationTime=-1), "expirationTime"),
        (body(expirationTime=1e300), "expirationTime"),
        (body(device_name="x" * 129), "device_name"),
        (body(device_name="bad\nname"), "device_name"),
        (body(extra=1), "extra"),
        ({**body(), "keys": {**body()["keys"], "extra": "x"}}, "keys.extra"),
        ([], "body"),
    ],
)
def test_other_bad_fields_are_refused(c: Any, doc: Any, field: str) -> None:
    refused(c, doc, field)


def test_a_body_over_8_kib_is_refused_unread(c: Any) -> None:
    r = c.post(SUBS, json=body(device_name="x" * 9000))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["message"] == "body: larger than 8192 bytes"


def test_no_more_subscriptions_than_allowed_per_user(c: Any) -> None:
    made = [c.post(SUBS, json=body(PUBLIC + str(i))) for i in range(3)]
    assert [r.status_code for r in made] == [201, 201, 201]
    again = c.post(SUBS, json=body(PUBLIC + "0"))  # an endpoint already held is an update, not one more
    assert again.status_code == 200
    r = c.post(SUBS, json=body(PUBLIC + "3"))
    assert r.status_code == 409, r.text
    assert r.json()["error"]["message"] == "subscriptions: at most 3 per user (push.max_subscriptions_per_user)"
    assert c.delete(f"{SUBS}/{made[0].json()['id']}").status_code == 204
    assert c.post(SUBS, json=body(PUBLIC + "3")).status_code == 201


def test_deleting_needs_a_uuid_that_exists(c: Any) -> None:
    r = c.delete(f"{SUBS}/not-an-id")
    assert r.status_code == 400 and r.json()["error"]["message"] == "subscription_id: must be a UUID"
    assert c.delete(f"{SUBS}/00000000-0000-4000-8000-000000000000").status_code == 404


def test_a_test_push_without_subscriptions_sends_nothing(c: Any) -> None:
    r = c.post(TEST)
    assert r.status_code == 200, r.text
    assert r.json() == {"sent": 0, "results": []}


def test_query_parameters_are_refused(c: Any) -> None:
    assert c.get(SUBS, params={"owner": "someone"}).status_code == 400


def test_with_push_disabled_nothing_is_registered_or_sent(database_url: str, tmp_path: Any) -> None:
    settings = open_settings(tmp_path, database_url)
    settings = settings.model_copy(update={"push": settings.push.model_copy(update={"enabled": False})})
    with run_server(settings) as s, s.client() as client:
        assert s.aw.alerts.listeners.count(s.aw.components["push"].route) == 0
        r = client.post(SUBS, json=body())
        assert r.status_code == 409 and r.json()["error"]["message"] == "push: disabled (push.enabled is false)"
        assert client.post(TEST).status_code == 409
        assert client.get(SUBS).json() == {"subscriptions": []}
