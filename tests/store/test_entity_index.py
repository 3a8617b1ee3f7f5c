"""The entity index kept in the events' commit: one row per entity, counts and first/last event
time folded per batch, resent events not counted, search ranks; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from agentwatch.entities import search
from agentwatch.entities.index import EntityIndexStage, fold
from agentwatch.events.entities import derive, entity_id
from agentwatch.events.model import Event
from agentwatch.store.entities_schema import entities
from agentwatch.store.events import commit_batch

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def ev(event_id: str, ts: float, host: str | None = None, user: str | None = None, **data: Any) -> Event:
    body: dict[str, Any] = {"event_id": event_id, "event_type": "network.connect", "data": data}
    if host:
        body["host"] = {"hostname": host}
    if user:
        body["actor"] = {"user": user}
    e = Event(body=body, event_id=event_id, event_type="network.connect", ts=ts, received_at=ts)
    e.entities = derive(e)
    return e


def commit(engine, batch: list[Event]) -> list[Event]:  # noqa: ANN001
    return commit_batch(engine, batch, [EntityIndexStage().in_commit])


def rows(engine) -> dict[tuple[str, str], tuple[float, float, int]]:  # noqa: ANN001
    with engine.connect() as conn:
        found = conn.execute(select(entities)).all()
    for r in found:
        assert r.id == entity_id(r.type, r.value)
    return {(r.type, r.value): (r.first_seen, r.last_seen, r.event_count) for r in found}


def test_a_batch_is_folded_into_one_row_per_entity():
    batch = [ev(f"e{i}", T0 + i, host="web-1", user="alice" if i % 2 else None) for i in range(10)]
    folded = fold(batch)
    assert [r["id"] for r in folded] == sorted(r["id"] for r in folded)
    by = {(r["type"], r["value"]): (r["first_seen"], r["last_seen"], r["event_count"]) for r in folded}
    # host in every event (T0..T0+9); alice in the odd ones (T0+1, +3, +5, +7, +9)
    assert by == {("host", "web-1"): (T0, T0 + 9, 10), ("user", "alice"): (T0 + 1, T0 + 9, 5)}


def test_counts_and_first_last_seen_across_batches_and_resends(engine):
    commit(engine, [ev("a", T0 + 50, host="Web-1"), ev("b", T0 + 10, host="Web-1", user="bob")])
    # a later batch: one event earlier than all, one later, one resent (not counted again)
    fresh = commit(
        engine,
        [
            ev("c", T0 + 5, host="Web-1"),
            ev("b", T0 + 10, host="Web-1", user="bob"),
            ev("d", T0 + 99, user="bob", dest={"ip": "10.0.0.7", "domain": "API.example.com"}),
        ],
    )
    assert [e.event_id for e in fresh] == ["c", "d"]
    assert commit(engine, [ev("a", T0 + 50, host="Web-1")]) == []
    assert rows(engine) == {
        ("host", "Web-1"): (T0 + 5, T0 + 50, 3),  # a, b, c
        ("user", "bob"): (T0 + 10, T0 + 99, 2),  # b, d
        ("ip", "10.0.0.7"): (T0 + 99, T0 + 99, 1),
        ("domain", "api.example.com"): (T0 + 99, T0 + 99, 1),  # domains are derived lower-case
    }


def test_an_entity_the_index_cannot_hold_is_left_out_and_the_batch_stored(engine):
    e = ev("long", T0, host="h")
    e.entities = [*e.entities, {"type": "process", "value": "x" * 600, "id": entity_id("process", "x" * 600)}]
    assert [x.event_id for x in commit(engine, [e])] == ["long"]
    assert set(rows(engine)) == {("host", "h")}


def names(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["value"], f["match"]) for f in found]


def test_search_ranks_exact_then_prefix_then_substring_newest_first(engine):
    commit(
        engine,
        [
            ev("1", T0 + 1, host="db"),
            ev("2", T0 + 2, host="db-replica"),
            ev("3", T0 + 3, host="DB-primary"),
            ev("4", T0 + 4, host="mongodb"),
            ev("5", T0 + 5, host="old-db-box"),
            ev("6", T0 + 6, user="DB"),
            ev("7", T0 + 7, host="web"),
        ],
    )
    # exact (user DB seen at +6 before host db at +1), prefix (DB-primary +3, db-replica +2),
    # substring (old-db-box +5, mongodb +4); "web" holds no "db"
    assert names(search.search(engine, "db", 20)) == [
        ("DB", "exact"),
        ("db", "exact"),
        ("DB-primary", "prefix"),
        ("db-replica", "prefix"),
        ("old-db-box", "substring"),
        ("mongodb", "substring"),
    ]
    assert names(search.search(engine, "db", 3)) == [("DB", "exact"), ("db", "exact"), ("DB-primary", "prefix")]
    assert names(search.search(engine, "DB-P", 20)) == [("DB-primary", "prefix")]
    assert search.search(engine, "zzz", 20) == []
    eid = entity_id("host", "web")
    assert names(search.search(engine, eid, 20)) == [("web", "id")]
    assert names(search.search(engine, eid.upper(), 20)) == [("web", "id")]


def test_prefix_ranges_at_the_ends_of_unicode(engine):
    """A prefix ending in the last code point, or in the one before the surrogates, is still
    matched exactly (the range's end is the next character that can be stored)."""
    values = ["a\U0010ffffb", "a\U0010fffe", "x\ud7ffz", "x\ue000"]
    commit(engine, [ev(str(i), T0 + i, host=v) for i, v in enumerate(values)])
    assert names(search.search(engine, "a\U0010ffff", 20)) == [("a\U0010ffffb", "prefix")]
    assert names(search.search(engine, "x\ud7ff", 20)) == [("x\ud7ffz", "prefix")]


def test_a_value_holding_nul_is_found_by_a_prefix_ending_in_nul(engine):
    commit(engine, [ev("1", T0, host="a\x00b"), ev("2", T0, host="a")])
    assert [f["match"] for f in search.search(engine, "a\x00", 20)] == ["prefix"]


def test_the_folded_column_compares_bytewise_on_either_store(engine):
    """A prefix search is one range of the index only when the column compares bytewise: the "C"
    collation on PostgreSQL, SQLite's default (BINARY, no COLLATE clause) there."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            collation = conn.exec_driver_sql(
                "SELECT collation_name FROM information_schema.columns WHERE table_name = 'entities'"
                " AND column_name = 'folded'"
            ).scalar_one()
            assert collation == "C"
        else:
            ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'entities'").scalar_one()
            assert "folded" in ddl and "collate" not in ddl.lower()


@pytest.mark.parametrize("text", ["%", "_", "\\", "d%", "db_"])
def test_search_treats_like_wildcards_as_characters(engine, text):
    commit(engine, [ev("1", T0, host="db"), ev("2", T0, host="a%b_c\\d")])
    found = [f["value"] for f in search.search(engine, text, 20)]
    assert "db" not in found
    assert found == (["a%b_c\\d"] if text in ("%", "_", "\\") else [])
