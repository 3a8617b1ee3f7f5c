"""A remote index replayed at an older state cannot roll an item back, on both stores: once the
index listed version 1.1.0 of an item, a later fetch offering 1.0.0 (an old, validly signed
copy of the index served again) lists that item unverified, saying why, and it cannot be
installed; the item installs again when the index offers 1.1.0 or newer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.config import Settings
from agentwatch.marketplace.signing import public_key_b64, sign_item
from tests.marketplace.helpers import FakeIndex, detection, index
from tests.support.server import RunningServer, run_server

ITEMS = "/api/v1/marketplace/items"
SLUG = "replayed-rule"
RULE_ID = "7a1b2c3d-0000-4000-8000-0000000000aa"


def _index(key: Ed25519PrivateKey, version: str) -> bytes:
    return index(sign_item(detection(SLUG, RULE_ID, version), key))


@pytest.fixture(scope="module")
def market(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, FakeIndex, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    with FakeIndex(_index(key, "1.1.0")).running() as fake:
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


def _refetch(srv: RunningServer) -> None:
    srv.aw.marketplace_catalogue.remote.checked = -1e18  # the refresh interval has passed


def test_an_older_version_after_a_newer_one_is_refused_as_a_replay(
    market: tuple[RunningServer, FakeIndex, Ed25519PrivateKey],
) -> None:
    srv, fake, key = market
    with srv.client() as c:
        first = {i["slug"]: i for i in c.get(ITEMS).json()["items"]}[SLUG]
        assert first["verified"] is True and first["version"] == "1.1.0"
        fake.body = _index(key, "1.0.0")  # an old copy of the index, signed then
        _refetch(srv)
        item = {i["slug"]: i for i in c.get(ITEMS).json()["items"]}[SLUG]
        assert item["version"] == "1.0.0" and item["verified"] is False
        assert item["reason"] == (
            "version: 1.0.0 is older than 1.1.0, which the index listed before (an older index replayed?)"
        )
        r = c.post(f"{ITEMS}/{SLUG}:install")
        assert r.status_code == 409 and "does not verify" in r.json()["error"]["message"]
        assert c.get(f"/api/v1/rules/{RULE_ID}").status_code == 404
        fake.body = _index(key, "1.2.0")
        _refetch(srv)
        assert c.post(f"{ITEMS}/{SLUG}:install").status_code == 201
