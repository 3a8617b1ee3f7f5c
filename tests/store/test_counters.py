"""Running totals read bounded: each family's TOP_N largest, the sum of the rest, on both stores."""

from __future__ import annotations

from collections import Counter

import pytest
from alembic import command
from sqlalchemy import insert, select, text

from agentwatch.store import counters
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import alembic_config, migrate
from agentwatch.store.schema import counters as counters_table

N = counters.TOP_N
EXTRA = 40


def add(engine, tally: dict[tuple[str, str], float]) -> None:
    with engine.begin() as conn:
        counters.add(conn, Counter(tally))


def models(n: int, value_of) -> dict[tuple[str, str], float]:  # noqa: ANN001
    return {("ai_model", f"model-{i:04d}"): float(value_of(i)) for i in range(n)}


def test_a_family_with_more_keys_than_top_n_answers_with_the_n_largest(engine):
    # model i has i + 1 calls: the N largest are the last N, with no tie at the boundary
    tally = models(N + EXTRA, lambda i: i + 1)
    add(engine, dict(list(tally.items())[: N // 2]))  # over several batches, as ingest writes them
    add(engine, dict(list(tally.items())[N // 2 :]))
    got = counters.read(engine, ["ai_model"]).family("ai_model")
    expected = {key: v for (_f, key), v in tally.items() if v > EXTRA}
    assert len(expected) == N
    assert got.top == expected
    assert got.rest == sum(range(1, EXTRA + 1))
    assert got.total == sum(tally.values())


def test_the_top_follows_later_batches(engine):
    add(engine, models(N + EXTRA, lambda i: 10))
    add(engine, {("ai_model", "late-arrival"): 1000.0, ("ai_model", "model-0000"): 500.0})
    got = counters.read(engine, ["ai_model"]).family("ai_model")
    assert len(got.top) == N
    assert got.top["late-arrival"] == 1000.0 and got.top["model-0000"] == 510.0
    assert got.total == 10 * (N + EXTRA) + 1500


def test_a_family_within_top_n_is_whole_and_has_no_rest(engine):
    add(engine, {("ai_tokens", "prompt"): 110.0, ("ai_tokens", "completion"): 55.0, ("ai_tokens", "total"): 165.0})
    add(engine, {("ai_provider", "openai"): 3.0, ("ai_provider", "anthropic"): 1.0})
    got = counters.read(engine, ["ai_tokens", "ai_provider", "ai_model"])
    assert got.family("ai_tokens").top == {"prompt": 110.0, "completion": 55.0, "total": 165.0}
    assert got.family("ai_provider") == counters.Family({"openai": 3.0, "anthropic": 1.0}, 0.0)
    assert got.family("ai_model") == counters.Family({}, 0.0)


def test_a_total_asked_for_by_key_is_exact_whatever_its_rank(engine):
    types = {("event_type", f"custom.t{i:04d}"): 50.0 for i in range(N + EXTRA)}
    add(engine, {**types, ("event_type", "ai.request"): 7.0, ("event_type", "ai.response"): 6.0})
    pairs = [("event_type", "ai.request"), ("event_type", "ai.response"), ("event_type", "never.seen")]
    got = counters.read(engine, ["event_type"], pairs)
    assert "ai.request" not in got.family("event_type").top
    assert got.value("event_type", "ai.request") == 7.0
    assert got.value("event_type", "ai.response") == 6.0
    assert got.value("event_type", "never.seen") == 0.0
    assert got.family("event_type").total == 50 * (N + EXTRA) + 13


def test_deleted_events_leave_the_top_and_the_sum(engine):
    add(engine, models(N + EXTRA, lambda i: i + 1))
    gone = Counter({("ai_model", f"model-{i:04d}"): float(i + 1) for i in range(N + EXTRA - 5, N + EXTRA)})
    with engine.begin() as conn:
        counters.take(conn, gone)
    got = counters.read(engine, ["ai_model"]).family("ai_model")
    assert len(got.top) == N and not set(got.top) & {key for _f, key in gone}
    assert got.total == sum(range(1, N + EXTRA - 5 + 1))
    with engine.begin() as conn:  # everything taken back: no row is left, not even the sum
        counters.take(conn, Counter(models(N + EXTRA - 5, lambda i: i + 1)))
    with engine.connect() as conn:
        assert conn.execute(select(counters_table)).all() == []


def _plan(engine) -> str:
    stmt = (
        select(counters_table.c.key, counters_table.c.value)
        .where(counters_table.c.family == "ai_model")
        .order_by(counters_table.c.value.desc(), counters_table.c.key)
        .limit(N)
    )
    with engine.connect() as conn:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "sqlite":
            return "\n".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
        conn.execute(text("ANALYZE counters"))
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))


def test_the_top_is_read_from_the_index_without_sorting_the_family(engine):
    """The read walks ix_counters_top: its cost is TOP_N rows, not the family's size."""
    add(engine, models(5000, lambda i: i % 977))
    add(engine, {("event_type", f"t.{i}"): 1.0 for i in range(2000)})
    plan = _plan(engine)
    assert "ix_counters_top" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


@pytest.mark.blank_database
def test_the_migration_fills_in_the_sums_of_a_store_that_already_holds_totals(database_url):
    """A store written before revision 0003 has totals but no sum rows: upgrading adds them."""
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0002_alerts")
        rows = [{"family": f, "key": k, "value": v} for (f, k), v in models(N + EXTRA, lambda i: i + 1).items()]
        rows += [{"family": "event_type", "key": "ai.request", "value": 4.0}]
        with engine.begin() as conn:
            conn.execute(insert(counters_table), rows)
        migrate(engine)
        got = counters.read(engine, ["ai_model", "event_type"])
        assert got.family("ai_model").rest == sum(range(1, EXTRA + 1))
        assert got.family("event_type") == counters.Family({"ai.request": 4.0}, 0.0)
        add(engine, {("ai_model", "model-0000"): 1.0})  # later writes keep the filled-in sum
        assert counters.read(engine, ["ai_model"]).family("ai_model").rest == sum(range(1, EXTRA + 1)) + 1
    finally:
        engine.dispose()
