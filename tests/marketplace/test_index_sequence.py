"""The optional ``sequence`` of a remote index, on both stores: an index carrying one is signed as
a whole (the number cannot be changed or stripped without breaking that signature), and each index
accepted from a source must carry a higher number than the last one (the same index fetched again
is not a new one); a lower or equal number, or none after one was seen, refuses the whole index,
naming the field and the rule, and the items last accepted stay listed. The last number is kept in
the store: a restarted server refuses an old index too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.marketplace.signing import key_id, sign_index, verify_index
from tests.marketplace.helpers import FakeIndex, Market, detection, index, market, market_settings, sequenced
from tests.support.server import run_server

ITEMS = "/api/v1/marketplace/items"
KEY = Ed25519PrivateKey.generate()
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}
ONE = detection("sequenced-one", "7a1b2c3d-0000-4000-8000-0000000000b1")
TWO = detection("sequenced-two", "7a1b2c3d-0000-4000-8000-0000000000b2")


def _older(n: int, last: int) -> str:
    return (
        f"sequence: {n} must be greater than {last}, the sequence of the last index accepted from this source "
        "(an older index replayed?)"
    )


@pytest.fixture(scope="module")
def seq(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    with market(module_database_url, tmp_path_factory.mktemp("server"), sequenced(KEY, 5, ONE), KEY) as m:
        yield m


def _listing(m: Market) -> tuple[set[str], str | None]:
    with m.server.client() as c:
        r = c.get(ITEMS)
    assert r.status_code == 200, r.text
    body = r.json()
    remote = {i["slug"] for i in body["items"] if i["source"] == "remote" and i["verified"]}
    return remote, body["meta"]["remote"]["error"]


def test_the_sequence_is_covered_by_the_index_signature() -> None:
    doc = sign_index({"format": "agentwatch-marketplace/1", "publisher": "t", "sequence": 3, "items": [ONE]}, KEY)
    assert verify_index(doc, TRUSTED) is None
    assert verify_index({**doc, "sequence": 4}, TRUSTED).startswith("signature: does not verify")
    assert verify_index({k: v for k, v in doc.items() if k != "signature"}, TRUSTED).startswith("signature: missing")


def test_a_higher_sequence_is_accepted_and_the_same_index_fetched_again_is_not_a_replay(seq: Market) -> None:
    assert _listing(seq) == ({"sequenced-one"}, None)
    seq.serve(seq.fake.body)  # the publisher has not changed it since
    assert _listing(seq) == ({"sequenced-one"}, None)
    seq.serve(sequenced(KEY, 6, ONE, TWO))
    assert _listing(seq) == ({"sequenced-one", "sequenced-two"}, None)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (lambda: sequenced(KEY, 5, ONE), _older(5, 6)),
        (lambda: sequenced(KEY, 6, ONE), _older(6, 6)),  # the same number on another index
        (
            lambda: index(*sequenced_items(6)),
            "sequence: missing, but the last index accepted from this source carried 6 "
            "(an older index replayed, or its signature stripped?)",
        ),
        (lambda: _changed(sequenced(KEY, 6, ONE), sequence=99), "signature: does not verify"),
        (lambda: _changed(sequenced(KEY, 7, ONE), signature=None), "signature: missing"),
        (lambda: _changed(sequenced(KEY, 7, ONE), sequence="8"), "sequence: must be an integer from 1 to"),
        (lambda: _changed(sequenced(KEY, 7, ONE), sequence=True), "sequence: must be an integer from 1 to"),
        (lambda: _changed(sequenced(KEY, 7, ONE), sequence=0), "sequence: must be an integer from 1 to"),
        (lambda: sequenced(Ed25519PrivateKey.generate(), 9, ONE), "signature.key_id:"),
    ],
    ids=["lower", "equal", "stripped", "changed", "unsigned", "text", "boolean", "zero", "foreign-key"],
)
def test_an_old_equal_missing_or_unsigned_sequence_refuses_the_index(seq: Market, body: Any, error: str) -> None:
    seq.serve(body())
    remote, got = _listing(seq)
    assert got is not None and got.startswith(error), got
    assert remote == {"sequenced-one", "sequenced-two"}  # the last index accepted stays listed


def test_a_sequence_seen_before_a_restart_is_still_refused(database_url: str, tmp_path: Path) -> None:
    with FakeIndex(sequenced(KEY, 3, ONE)).running() as fake:
        cfg = market_settings(tmp_path, database_url, fake.url, KEY)
        with run_server(cfg) as srv:
            assert _listing(Market(srv, fake)) == ({"sequenced-one"}, None)
        fake.body = sequenced(KEY, 2, ONE, TWO)
        with run_server(cfg) as srv:
            # refused; the items of the last index accepted (kept in the store) stay listed
            assert _listing(Market(srv, fake)) == ({"sequenced-one"}, _older(2, 3))


def sequenced_items(n: int) -> list[dict[str, Any]]:
    """The items of the index of sequence ``n``, as signed there (to serve them without it)."""
    return orjson.loads(sequenced(KEY, n, ONE, TWO))["items"]


def _changed(body: bytes, **fields: Any) -> bytes:
    doc = orjson.loads(body)
    for k, v in fields.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return orjson.dumps(doc)
