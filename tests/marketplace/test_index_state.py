"""The stored state of a remote index source, on both stores: nodes writing it at the same time
agree (a write from a stale read loses, and the loser judges again), and the row holds no part of
the index URL (which may carry a token)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from agentwatch.marketplace import index_state
from agentwatch.marketplace.schema import marketplace_index_state

URL = "https://index.example/i.json?token=s3cret-token"


def test_a_write_from_a_stale_read_loses_and_the_next_judgement_sees_the_winner(engine: Engine) -> None:
    source = index_state.source_key(URL)
    empty = index_state.load(engine, source)
    assert empty == index_state.State()
    mine, _ = index_state.judge(empty, 4, "a" * 64, [("one", "1.2.0")])
    theirs, _ = index_state.judge(empty, 3, "b" * 64, [("one", "1.0.0")])
    assert index_state.save(engine, source, empty, mine) is True
    assert index_state.save(engine, source, empty, theirs) is False  # both read no row; one wins
    now = index_state.load(engine, source)
    assert (now.sequence, now.digest, now.versions, now.generation) == (4, "a" * 64, {"one": "1.2.0"}, 1)
    # the loser judges its index again against what is stored now, and it is refused
    with pytest.raises(index_state.Refused, match="^sequence: 3 must be greater than 4, "):
        index_state.judge(now, 3, "b" * 64, [("one", "1.0.0")])
    newer, refused = index_state.judge(now, 5, "c" * 64, [("one", "1.1.0"), ("two", "0.1.0")])
    assert refused == {
        "one": "version: 1.1.0 is older than 1.2.0, which the index listed before (an older index replayed?)"
    }
    assert index_state.save(engine, source, now, newer) is True
    assert index_state.save(engine, source, now, newer) is False  # generation 1 is gone
    assert index_state.load(engine, source).versions == {"one": "1.2.0", "two": "0.1.0"}


def test_the_row_names_the_source_by_a_digest_of_its_url(engine: Engine) -> None:
    source = index_state.source_key(URL)
    state, _ = index_state.judge(index_state.State(), None, None, [("one", "1.0.0")])
    assert index_state.save(engine, source, index_state.State(), state)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(marketplace_index_state))]
    assert len(rows) == 1 and not any("s3cret" in str(v) for v in rows[0])
    assert rows[0][0] == source and len(source) == 64
