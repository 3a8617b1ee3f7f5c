"""A remote index replayed at an older state cannot roll an item back, on both stores: once the
index listed version 1.1.0 of an item, a later fetch offering 1.0.0 (an old, validly signed
copy of the index served again) lists that item unverified, saying why, and it cannot be
installed; the item installs again when the index offers 1.1.0 or newer. What was seen is kept
in the store, so the same holds after a restart and on another node of the same database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.marketplace.signing import sign_item
from tests.marketplace.helpers import FakeIndex, Market, detection, index, market, market_settings
from tests.support.server import run_server

ITEMS = "/api/v1/marketplace/items"
SLUG = "replayed-rule"
RULE_ID = "7a1b2c3d-0000-4000-8000-0000000000aa"
REPLAYED = "version: 1.0.0 is older than 1.1.0, which the index listed before (an older index replayed?)"
KEY = Ed25519PrivateKey.generate()


def _index(version: str) -> bytes:
    return index(sign_item(detection(SLUG, RULE_ID, version), KEY))


@pytest.fixture(scope="module")
def replayed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    with market(module_database_url, tmp_path_factory.mktemp("server"), _index("1.1.0"), KEY) as m:
        yield m


def _item(c, slug: str = SLUG) -> dict:
    return {i["slug"]: i for i in c.get(ITEMS).json()["items"]}[slug]


def test_an_older_version_after_a_newer_one_is_refused_as_a_replay(replayed: Market) -> None:
    with replayed.server.client() as c:
        first = _item(c)
        assert first["verified"] is True and first["version"] == "1.1.0"
        replayed.serve(_index("1.0.0"))  # an old copy of the index, signed then
        item = _item(c)
        assert item["version"] == "1.0.0" and item["verified"] is False
        assert item["reason"] == REPLAYED
        r = c.post(f"{ITEMS}/{SLUG}:install")
        assert r.status_code == 409 and "does not verify" in r.json()["error"]["message"]
        assert c.get(f"/api/v1/rules/{RULE_ID}").status_code == 404
        replayed.serve(_index("1.2.0"))
        assert c.post(f"{ITEMS}/{SLUG}:install").status_code == 201


def test_a_replay_after_a_restart_or_on_another_node_is_refused(database_url: str, tmp_path: Path) -> None:
    with FakeIndex(_index("1.1.0")).running() as fake:
        cfg = market_settings(tmp_path / "a", database_url, fake.url, KEY)
        with run_server(cfg) as first, first.client() as c:
            assert _item(c)["verified"] is True
        fake.body = _index("1.0.0")  # the old copy, served to the restarted server
        with run_server(cfg) as again, again.client() as c:
            item = _item(c)
            assert item["version"] == "1.0.0" and item["verified"] is False and item["reason"] == REPLAYED
            assert c.post(f"{ITEMS}/{SLUG}:install").status_code == 409
            other = market_settings(tmp_path / "b", database_url, fake.url, KEY)
            with run_server(other) as node, node.client() as n:  # a second node on the same database
                assert _item(n)["reason"] == REPLAYED
