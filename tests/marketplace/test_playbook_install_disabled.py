"""A playbook from the marketplace never acts before a person of this installation switched it
on, on both stores: a signed playbook that says ``"enabled": true`` (with an alert trigger, and a
webhook that sends alert data out) is installed disabled; once someone enabled it, an update
to a newer version keeps it enabled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.marketplace.signing import sign_item
from tests.marketplace.helpers import Market, index, market

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
def eager(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Market, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    with market(module_database_url, tmp_path_factory.mktemp("server"), _index(key, "1.0.0"), key) as m:
        yield m, key


def test_an_installed_playbook_starts_disabled_and_an_update_keeps_the_local_choice(
    eager: tuple[Market, Ed25519PrivateKey],
) -> None:
    m, key = eager
    srv = m.server
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
        m.serve(_index(key, "1.1.0"))
        up = c.post(f"{ITEMS}/{SLUG}:install")
        assert up.status_code == 200, up.text
        book = c.get(f"/api/v1/playbooks/{pid}").json()
        assert book["enabled"] is True and book["description"] == "acts on every alert (1.1.0)"
