"""A feed's sync writes only what changed: the indicators it adds, the ones whose stored fields
differ from the list, and the ones the list dropped. An indicator listed as it is stored keeps its
``updated_at`` and gets no change log entry, so another node (reading the log) re-applies only
the real changes, and its index still ends up as a rebuild from the table would make it. The
list is served by a real HTTP server on 127.0.0.12; SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from agentwatch.intel import changes, feeds, store
from agentwatch.intel.index import IocIndex
from agentwatch.intel.matcher import IocMatcher
from agentwatch.intel.schema import intel_changes, intel_iocs
from agentwatch.intel.settings import FeedSettings, IntelSettings
from agentwatch.store.engine import make_engine
from tests.intel.fake_list import FakeList, serve_list

FEED_HOST = "127.0.0.12"
SOURCE = "feed:steady"
MANY = 3000


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeList]:
    with serve_list(FEED_HOST) as listing:
        yield listing


def feed_of(fake: FakeList, **kw: Any) -> FeedSettings:
    return FeedSettings(id="steady", url=fake.url, allow_private=True, **kw)


def listing(*values: str) -> bytes:
    return ("# a steady list\n" + "\n".join(values) + "\nnot an indicator\n").encode()


def domains(count: int, start: int = 0) -> list[str]:
    return [f"d{i}.steady.example" for i in range(start, start + count)]


async def sync(engine: Engine, feed: FeedSettings) -> dict[str, Any]:
    return await feeds.sync(engine, feed, 7, 1_000_000)


def head(engine: Engine) -> int:
    with engine.connect() as conn:
        return changes.head(conn)


def logged_after(engine: Engine, position: int) -> list[tuple[str, str]]:
    """(indicator id, op) of the change log's entries after ``position``, in order."""
    with engine.connect() as conn:
        c = intel_changes.c
        rows = conn.execute(select(c.ioc_id, c.op).where(c.seq > position).order_by(c.seq))
        return [(i, o) for i, o in rows]


def stamps(engine: Engine) -> dict[str, float]:
    """value -> updated_at of every stored indicator."""
    with engine.connect() as conn:
        return dict(conn.execute(select(intel_iocs.c.value, intel_iocs.c.updated_at)).all())


def ids(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(intel_iocs.c.value, intel_iocs.c.id)).all())


def counts(done: dict[str, Any]) -> tuple[int, ...]:
    return tuple(done[k] for k in ("created", "changed", "unchanged", "removed", "updated", "held_by_others"))


class Statements:
    """Counts the statements that touch the indicators' table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "intel_iocs" in statement.lower():
            self.count += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


async def test_a_second_sync_of_an_unchanged_list_writes_and_logs_nothing(engine: Engine, fake: FakeList) -> None:
    fake.body = listing(*domains(MANY), "198.51.100.7", "203.0.113.0/24")
    feed = feed_of(fake)
    first = await sync(engine, feed)
    assert (first["indicators"], first["rejected"], first["created"]) == (MANY + 2, 1, MANY + 2)
    position, before = head(engine), stamps(engine)

    with Statements(engine) as statements:
        again = await sync(engine, feed)
    assert logged_after(engine, position) == [] and head(engine) == position
    assert stamps(engine) == before, "an unchanged indicator's updated_at moved"
    assert counts(first) == (MANY + 2, 0, 0, 0, 0, 0)
    assert counts(again) == (0, 0, MANY + 2, 0, MANY + 2, 0)
    # compared in bulk: a read per chunk of listed indicators, not one per indicator
    assert statements.count <= MANY // store.CHUNK + 10, statements.count
    assert feeds.status(engine, feed) == again


async def test_one_changed_indicator_among_many_gives_one_entry(engine: Engine, fake: FakeList) -> None:
    values = domains(MANY)
    fake.body = listing(*values)
    feed = feed_of(fake, severity=5)
    await sync(engine, feed)
    known = ids(engine)
    # a row the feed holds drifts from its list (an older version, or a hand edit, left it so)
    with engine.begin() as conn:
        conn.execute(update(intel_iocs).where(intel_iocs.c.value == values[17]).values(severity=2))
    position, before = head(engine), stamps(engine)

    done = await sync(engine, feed)
    assert logged_after(engine, position) == [(known[values[17]], changes.UPSERT)]
    after = stamps(engine)
    assert after[values[17]] > before[values[17]]
    assert {v: t for v, t in after.items() if v != values[17]} == {v: t for v, t in before.items() if v != values[17]}
    assert store.get(engine, known[values[17]])["severity"] == 5  # type: ignore[index]
    assert counts(done) == (0, 1, MANY - 1, 0, MANY, 0)

    # one more listed, one dropped: one entry each
    position = head(engine)
    fake.body = listing(*values[1:], "added.steady.example")
    done = await sync(engine, feed)
    entries = logged_after(engine, position)
    assert sorted(entries) == sorted(
        [(known[values[0]], changes.DELETE), (ids(engine)["added.steady.example"], "upsert")]
    )
    assert counts(done) == (1, 0, MANY - 1, 1, MANY - 1, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"severity": 1},
        {"description": "seen in case 9"},
        {"tags": ["attack.command_and_control"]},
        {"expires_at": 4_102_444_800.25},
    ],
    ids=["severity", "description", "tags", "expires_at"],
)
def test_every_stored_field_a_match_reads_counts_as_a_change(engine: Engine, change: dict[str, Any]) -> None:
    items = [store.Indicator("domain", v, SOURCE, 6, "listed", ["feed"]) for v in domains(1200)]
    first = store.replace_source(engine, SOURCE, items, 1_000_000)
    known, position = ids(engine), head(engine)
    again = store.replace_source(engine, SOURCE, items, 1_000_000)
    assert logged_after(engine, position) == []

    items[600] = store.Indicator(**{**vars(items[600]), **change})
    done = store.replace_source(engine, SOURCE, items, 1_000_000)
    assert logged_after(engine, position) == [(known[items[600].value], changes.UPSERT)]
    assert (first, again) == (store.SourceSync(1200, 0, 0, 0, 0), store.SourceSync(0, 0, 1200, 0, 0))
    assert done == store.SourceSync(0, 1, 1199, 0, 0) and done is not None and done.updated == 1200
    stored = store.get(engine, known[items[600].value])
    assert stored is not None
    assert {k: stored[k] for k in change if k != "expires_at"} == {k: v for k, v in change.items() if k != "expires_at"}


def index_contents(index: IocIndex) -> tuple[Any, ...]:
    return index.exact, {k: v for k, v in index.networks.items() if v}, index.ids


def stored(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """id -> every field a match or the API reads, of every stored indicator."""
    c = intel_iocs.c
    fields = (c.kind, c.value, c.source, c.severity, c.description, c.tags, c.expires_at)
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(select(c.id, *fields))}


def real_changes(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> int:
    """Indicators added, removed, or with a field that differs."""
    return len(before.keys() ^ after.keys()) + sum(before[i] != after[i] for i in before.keys() & after.keys())


async def test_another_nodes_index_follows_mixed_syncs_and_equals_a_rebuild(
    engine: Engine, database_url: str, fake: FakeList
) -> None:
    elsewhere = make_engine(database_url)  # another node: its own connections, its own matcher
    other = IocMatcher(elsewhere, IntelSettings())
    try:
        other.sync()  # built whole once, at the log's head
        assert other.rebuilds == 1

        async def step(feed: FeedSettings, body: bytes) -> dict[str, Any]:
            fake.body = body
            before, applied = stored(engine), other.applied
            done = await sync(engine, feed)
            real = real_changes(before, stored(engine))
            other.sync()
            rebuilt = IocIndex.of(store.active(engine, time.time()))
            assert index_contents(other.index()) == index_contents(rebuilt)
            assert other.applied - applied == real, "the other node re-applied indicators that did not change"
            assert done["created"] + done["changed"] + done["removed"] == real
            return done

        base = [*domains(800), "198.51.100.7", "198.51.100.8", "203.0.113.0/24", "2001:db8::/48"]
        feed = feed_of(fake)
        await step(feed, listing(*base))
        assert counts(await step(feed, listing(*base))) == (0, 0, len(base), 0, len(base), 0)
        # some dropped, some added, the rest as they were
        mixed = [*base[100:], *domains(50, start=5000), "192.0.2.0/24"]
        assert counts(await step(feed, listing(*mixed))) == (51, 0, len(base) - 100, 100, len(base) - 100, 0)
        # a person takes one over, and the feed keeps listing it
        assert store.add(engine, [store.Indicator("domain", mixed[0], "analyst", 9)], 1_000_000) == (0, 1)
        applied = other.applied
        other.sync()
        assert other.applied == applied + 1
        assert counts(await step(feed, listing(*mixed))) == (0, 0, len(mixed) - 1, 0, len(mixed) - 1, 1)
        # the feed's severity changes: every indicator it holds is rewritten, the person's is not
        resevered = await step(feed_of(fake, severity=3), listing(*mixed))
        assert counts(resevered) == (0, len(mixed) - 1, 0, 0, len(mixed) - 1, 1)
        assert other.lookup("domain", mixed[1])[0].severity == 3
        assert other.lookup("domain", mixed[0])[0].severity == 9
        assert other.rebuilds == 1, "the other node rebuilt instead of applying the logged changes"
    finally:
        elsewhere.dispose()


async def test_the_synced_log_line_counts_each_kind(
    engine: Engine, fake: FakeList, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def info(self, name: str, **fields: Any) -> None:
            lines.append((name, fields))

        warning = info

    monkeypatch.setattr(feeds, "log", Recorder())
    feed = feed_of(fake)
    fake.body = listing("a.steady.example", "b.steady.example", "c.steady.example")
    await sync(engine, feed)
    with engine.begin() as conn:
        conn.execute(update(intel_iocs).where(intel_iocs.c.value == "b.steady.example").values(description="x"))
    fake.body = listing("b.steady.example", "c.steady.example", "d.steady.example")
    done = await sync(engine, feed)
    name, fields = lines[-1]
    assert name == "intel.feed_synced"
    assert {k: fields[k] for k in ("created", "changed", "unchanged", "removed", "held_by_others")} == {
        "created": 1,
        "changed": 1,
        "unchanged": 1,
        "removed": 1,
        "held_by_others": 0,
    }
    assert counts(done) == (1, 1, 1, 1, 2, 0)
