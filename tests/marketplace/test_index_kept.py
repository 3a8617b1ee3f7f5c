"""The last remote index accepted is kept in the store, on both stores: after a restart (or on
another node) whose fetch is refused (an old index replayed) or fails, the items of the last index
accepted are still listed, checked again against the keys trusted now; a later index accepted
replaces the kept one; a kept index larger than ``marketplace.max_bytes`` (lowered since) is not
read."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from agentwatch.config import Settings
from agentwatch.marketplace.schema import marketplace_index_state
from agentwatch.marketplace.signing import sign_item
from tests.marketplace.helpers import FakeIndex, detection, index, market_settings, sequenced
from tests.support.server import RunningServer, run_server

ITEMS = "/api/v1/marketplace/items"
KEY = Ed25519PrivateKey.generate()
ONE = detection("kept-one", "7a1b2c3d-0000-4000-8000-0000000000e1")
TWO = detection("kept-two", "7a1b2c3d-0000-4000-8000-0000000000e2")
REFUSED = (
    "sequence: 2 must be greater than 3, the sequence of the last index accepted from this source "
    "(an older index replayed?)"
)


def _remote(srv: RunningServer) -> tuple[dict[str, dict], dict]:
    with srv.client() as c:
        r = c.get(ITEMS)
    assert r.status_code == 200, r.text
    items = {i["slug"]: i for i in r.json()["items"] if i["source"] == "remote"}
    return items, r.json()["meta"]["remote"]


def _verified(items: dict[str, dict]) -> set[str]:
    return {slug for slug, i in items.items() if i["verified"]}


def test_a_restart_served_a_replay_still_lists_the_last_good_items_verified(database_url: str, tmp_path: Path) -> None:
    with FakeIndex(sequenced(KEY, 3, ONE, TWO)).running() as fake:
        cfg = market_settings(tmp_path / "a", database_url, fake.url, KEY)
        with run_server(cfg) as first:
            assert _verified(_remote(first)[0]) == {"kept-one", "kept-two"}
        fake.body = sequenced(KEY, 2, ONE)  # an old copy of the index, served to the restarted server
        with run_server(cfg) as again:
            items, meta = _remote(again)
            assert _verified(items) == {"kept-one", "kept-two"}
            assert meta["error"] == REFUSED and meta["items"] == 2
            with again.client() as c:
                assert c.post(f"{ITEMS}/kept-two:install").status_code == 201
            other = market_settings(tmp_path / "b", database_url, fake.url, KEY)
            with run_server(other) as node:  # another node of the same database, started now
                items, meta = _remote(node)
                assert _verified(items) == {"kept-one", "kept-two"} and meta["error"] == REFUSED
        # a newer index accepted replaces the kept one
        fake.body = sequenced(KEY, 4, ONE)
        with run_server(cfg) as third:
            assert _verified(_remote(third)[0]) == {"kept-one"}
        fake.body = sequenced(KEY, 3, ONE, TWO)
        with run_server(cfg) as fourth:
            items, meta = _remote(fourth)
            assert set(items) == {"kept-one"} and _verified(items) == {"kept-one"}
            assert meta["error"].startswith("sequence: 3 must be greater than 4,")


def test_the_kept_items_are_checked_again_with_the_keys_trusted_now(database_url: str, tmp_path: Path) -> None:
    with FakeIndex(index(sign_item(ONE, KEY))).running() as fake:
        with run_server(market_settings(tmp_path, database_url, fake.url, KEY)) as first:
            assert _verified(_remote(first)[0]) == {"kept-one"}
        fake.body = b"not json"
        with run_server(market_settings(tmp_path, database_url, fake.url, KEY)) as trusting:
            items, meta = _remote(trusting)
            assert _verified(items) == {"kept-one"} and meta["error"] == "index: not JSON"
        with run_server(market_settings(tmp_path, database_url, fake.url)) as distrusting:
            items, meta = _remote(distrusting)
            assert items["kept-one"]["verified"] is False
            assert items["kept-one"]["reason"].endswith("is not a trusted publisher key")
            with distrusting.client() as c:
                assert c.post(f"{ITEMS}/kept-one:install").status_code == 409


def test_a_kept_index_larger_than_max_bytes_now_is_not_read(database_url: str, tmp_path: Path) -> None:
    body = sequenced(KEY, 1, ONE, TWO)
    assert len(body) > 1024
    with FakeIndex(body).running() as fake:
        cfg = market_settings(tmp_path, database_url, fake.url, KEY)
        with run_server(cfg) as first:
            assert _verified(_remote(first)[0]) == {"kept-one", "kept-two"}
        fake.body = b"not json"
        small = cfg.model_copy(update={"marketplace": cfg.marketplace.model_copy(update={"max_bytes": 1024})})
        assert isinstance(small, Settings)
        with run_server(small) as again:
            items, meta = _remote(again)
            assert items == {} and meta["error"] == "index: not JSON"


def test_the_row_of_the_source_holds_the_index_document_as_fetched(database_url: str, tmp_path: Path) -> None:
    body = index(sign_item(TWO, KEY))
    with FakeIndex(body).running() as fake, run_server(market_settings(tmp_path, database_url, fake.url, KEY)) as srv:
        assert _verified(_remote(srv)[0]) == {"kept-two"}
        with srv.aw.engine.connect() as conn:
            docs = conn.execute(select(marketplace_index_state.c.document)).scalars().all()
    assert docs == [body.decode()]
