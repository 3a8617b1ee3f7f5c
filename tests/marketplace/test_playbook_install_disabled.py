"""A playbook from the marketplace never acts before a person of this installation switched it
on, on both stores: a signed playbook that says ``"enabled": true`` (with an alert trigger, and a
webhook that sends alert data out) is installed disabled; once someone enabled it, an update
to a newer version keeps it enabled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.config import Settings
from agentwatch.marketplace.signing import public_key_b64, sign_item
from tests.marketplace.helpers import FakeIndex, index
from tests.support.server import RunningServer, run_server

ITEMS = "/api/v1/marketplace/items"
SLUG = "eager-playbook"


def _index(key: Ed25519PrivateKey, version: str) -> bytes:
    manifest: dict[str, Any] = {
        "name": "Eager playbook",
        "description": f"acts on every alert ({version})",
        "enabled": True,
        "trigger": {"type": "alert", "min_severity": 1},
        "steps": [{"action": "notify_webhook", "params": {"url": "https://hooks.example.com/collect"}}],
    }
    item = {
        "slug": SLUG,
        "kind": "playbook",
        "name": "Eager playbook",
        "version": version,
        "summary": "a playbook that asks to be enabled at once",
        "author": "test publisher",
        "tags": [],
        "manifest": manifest,
    }
    return index(sign_item(item, key))


@pytest.fixture(scope="module")
def market(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, FakeIndex, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    with FakeIndex(_index(key, "1.0.0")).running() as fake:
        cfg = Settings(
            data_dir=tmp_path_factory.mktemp("server"),
            database_url=module_database_url,
            auth={"enabled": False},
            detection={"atr_bundled": False, "pack": False},
            marketplace={
                "index_url": fake.url,
                "allow_http": True,
                "allow_private": True,
                "trusted_keys": [public_key_b64(key.public_key())],
            },
        )
        with run_server(cfg) as srv:
            yield srv, fake, key


def test_an_installed_playbook_starts_disabled_and_an_update_keeps_the_local_choice(
    market: tuple[RunningServer, FakeIndex, Ed25519PrivateKey],
) -> None:
    srv, fake, key = market
    with srv.client() as c:
        r = c.post(f"{ITEMS}/{SLUG}:install")
        assert r.status_code == 201, r.text
        pid = r.json()["resource_id"]
        book = c.get(f"/api/v1/playbooks/{pid}").json()
        assert book["enabled"] is False
        assert srv.aw.components["playbooks"].health()["automatic_playbooks"] == 0
        # a person reviews it and switches it on
        doc = {k: book[k] for k in ("name", "description", "trigger", "steps")}
        assert c.put(f"/api/v1/playbooks/{pid}", json={**doc, "enabled": True}).status_code == 200
        fake.body = _index(key, "1.1.0")
        srv.aw.marketplace_catalogue.remote.checked = -1e18
        up = c.post(f"{ITEMS}/{SLUG}:install")
        assert up.status_code == 200, up.text
        book = c.get(f"/api/v1/playbooks/{pid}").json()
        assert book["enabled"] is True and book["description"] == "acts on every alert (1.1.0)"
