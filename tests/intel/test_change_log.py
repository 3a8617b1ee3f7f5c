"""The change log (``intel_changes``) keeps the indicator index of every node sharing a store in
step without rebuilding it: a change made through one server is matched, or no longer matched,
by events sent to another server on the same database within a few seconds, each change
applied on its own; every writer logs its change in its own transaction; old entries are
pruned, and a node whose position was pruned away rebuilds once. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select

from agentwatch.config import Settings
from agentwatch.intel import changes, store
from agentwatch.intel.matcher import matcher_of
from agentwatch.intel.schema import intel_changes
from agentwatch.intel.settings import IntelSettings
from tests.detect.helpers import wait_for, with_detection
from tests.support.server import RunningServer, run_server

IOCS = "/api/v1/intel/iocs"


@pytest.fixture(scope="module")
def nodes(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, ...]]:
    """Two servers on one database (one SQLite file, or one PostgreSQL database)."""
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    cfg = with_detection(base)
    with run_server(cfg) as one, run_server(cfg) as two:
        yield one, two


def add(c: Any, *items: dict[str, Any]) -> None:
    r = c.post(IOCS, json={"iocs": list(items)})
    assert r.status_code == 200, r.text


def ioc_id(c: Any, value: str) -> str:
    found = [i["id"] for i in c.get(IOCS, params={"q": value}).json()["iocs"] if i["value"] == value]
    assert len(found) == 1, found
    return found[0]


def dns(c: Any, host: str, name: str) -> None:
    event = {"event_type": "network.dns", "host": {"hostname": host}, "data": {"query_name": name, "query_type": "A"}}
    r = c.post("/api/v1/ingest", json=[event])
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def alerted(c: Any, host: str) -> list[str]:
    r = c.get("/api/v1/alerts", params={"type": "ioc", "entity": host})
    assert r.status_code == 200, r.text
    return sorted(a["details"]["indicator"]["value"] for a in r.json()["alerts"])


def meets(c: Any, value: str) -> list[str]:
    r = c.post("/api/v1/intel/enrich", json={"indicator": value})
    assert r.status_code == 200, r.text
    return sorted(m["value"] for m in r.json()["matches"])


def logged(engine: Engine, ioc: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(intel_changes.c.op).where(intel_changes.c.ioc_id == ioc).order_by(intel_changes.c.seq)
        )
        return list(rows.scalars())


def test_a_change_on_one_node_reaches_the_others_events_without_a_rebuild(nodes: tuple[RunningServer, ...]) -> None:
    one, two = nodes
    tag = uuid.uuid4().hex[:8]
    with one.client() as c1, two.client() as c2:
        add(c1, *({"value": f"bulk{i}-{tag}.example"} for i in range(300)))
        assert meets(c2, f"bulk7-{tag}.example") == [f"bulk7-{tag}.example"]  # two's index is built
        rebuilt = matcher_of(two.aw).rebuilds

        add(c1, {"value": f"new-{tag}.example", "severity": 9})
        started = time.monotonic()
        host = f"two-{tag}"

        def seen() -> list[str]:
            dns(c2, host, f"www.new-{tag}.example")  # sent to the other node until it matches
            time.sleep(0.3)
            return alerted(c2, host)

        found = wait_for(seen, timeout=8, interval=0.2)
        assert found == [f"new-{tag}.example"]
        assert time.monotonic() - started < 8

        assert c1.delete(f"{IOCS}/{ioc_id(c1, f'bulk3-{tag}.example')}").status_code == 204
        add(c1, {"value": f"bulk4-{tag}.example", "severity": 2})  # an update
        wait_for(lambda: meets(c2, f"bulk3-{tag}.example") == [], timeout=8, interval=0.2)
        gone_host = f"two-gone-{tag}"
        dns(c2, gone_host, f"bulk3-{tag}.example")
        dns(c2, gone_host, f"bulk5-{tag}.example")  # a later event that does match: the first was checked
        assert wait_for(lambda: alerted(c2, gone_host)) == [f"bulk5-{tag}.example"]
        hit = c2.post("/api/v1/intel/enrich", json={"indicator": f"bulk4-{tag}.example"}).json()["matches"]
        assert [m["severity"] for m in hit] == [2]
        assert matcher_of(two.aw).rebuilds == rebuilt, "the other node rebuilt its whole index"
        assert len(matcher_of(two.aw).index()) == len(matcher_of(one.aw).index())


def test_every_writer_logs_its_change_in_its_own_transaction(nodes: tuple[RunningServer, ...]) -> None:
    engine = nodes[0].aw.engine
    tag = uuid.uuid4().hex[:8]
    assert store.add(engine, [store.Indicator("domain", f"api-{tag}.example")], 1_000_000) is not None
    with nodes[0].client() as c:
        api_id = ioc_id(c, f"api-{tag}.example")
        assert logged(engine, api_id) == ["upsert"]
        assert store.add(engine, [store.Indicator("domain", f"api-{tag}.example", severity=3)], 1_000_000)
        assert logged(engine, api_id) == ["upsert", "upsert"]
        assert store.remove(engine, api_id)
        assert logged(engine, api_id) == ["upsert", "upsert", "delete"]

        feed = f"feed:{tag}"
        first = [store.Indicator("domain", f"f{i}-{tag}.example", feed) for i in range(3)]
        assert store.replace_source(engine, feed, first, 1_000_000) is not None
        ids = {i: ioc_id(c, f"f{i}-{tag}.example") for i in range(3)}
        assert store.replace_source(engine, feed, first[1:], 1_000_000) is not None  # f0 leaves the feed
        assert logged(engine, ids[0]) == ["upsert", "delete"]
        assert logged(engine, ids[1]) == ["upsert"]  # listed as stored: not written again
        again = [store.Indicator("domain", f"f1-{tag}.example", feed, severity=2), first[2]]
        assert store.replace_source(engine, feed, again, 1_000_000) is not None
        assert logged(engine, ids[1]) == ["upsert", "upsert"]
        assert logged(engine, ids[2]) == ["upsert"]

        brief = store.Indicator("domain", f"brief-{tag}.example", expires_at=time.time() + 0.5)
        assert store.add(engine, [brief], 1_000_000) is not None
        brief_id = ioc_id(c, f"brief-{tag}.example")
        time.sleep(0.6)
        assert store.purge_expired(engine, time.time()) >= 1
        assert logged(engine, brief_id) == ["upsert", "delete"]

        # a refused write logs nothing
        with engine.connect() as conn:
            before = conn.execute(select(intel_changes.c.seq).order_by(intel_changes.c.seq.desc()).limit(1)).scalar()
        assert store.add(engine, [store.Indicator("domain", f"refused-{tag}.example")], 1) is None
        with engine.connect() as conn:
            after = conn.execute(select(intel_changes.c.seq).order_by(intel_changes.c.seq.desc()).limit(1)).scalar()
        assert after == before


def test_numbers_follow_commit_order_so_a_reader_never_passes_one_still_open(nodes: tuple[RunningServer, ...]) -> None:
    """A writer that drew a number holds back every later writer until it commits: a reader
    that saw a number never meets a lower one later (the PostgreSQL sequence gap)."""
    engine = nodes[0].aw.engine
    tag = uuid.uuid4().hex[:8]
    with engine.connect() as conn:
        start = changes.head(conn)
    done: list[Any] = []
    conn = engine.connect()
    try:
        tx = conn.begin()
        drawn = changes.record(conn, [f"open-{tag}"], [])  # drew a number; not committed yet
        later = threading.Thread(
            target=lambda: done.append(store.add(engine, [store.Indicator("domain", f"later-{tag}.example")], 10**6))
        )
        later.start()
        time.sleep(0.5)
        assert later.is_alive() and not done, "a later writer drew a number while an earlier one was open"
        assert changes.read(engine, start, 100).entries == []  # nothing committed to read yet
        tx.commit()
    finally:
        conn.close()
    later.join(timeout=30)
    assert done and done[0] is not None
    entries = changes.read(engine, start, 100).entries
    assert [e[1] for e in entries][:1] == [f"open-{tag}"] and entries[0][0] == drawn
    assert len(entries) == 2 and entries[1][0] > drawn


def test_pruning_keeps_the_recent_entries_and_a_node_behind_it_rebuilds(nodes: tuple[RunningServer, ...]) -> None:
    one, two = nodes
    engine = one.aw.engine
    tag = uuid.uuid4().hex[:8]
    with one.client() as c1, two.client() as c2:
        add(c1, {"value": f"old-{tag}.example"})
        matcher_of(two.aw).sync()
        assert meets(c2, f"old-{tag}.example") == [f"old-{tag}.example"]  # two is at the log's head
        time.sleep(0.05)
        cutoff = time.time()
        time.sleep(0.05)
        add(c1, {"value": f"kept-{tag}.example"})
        old, kept = ioc_id(c1, f"old-{tag}.example"), ioc_id(c1, f"kept-{tag}.example")
        two_matcher = matcher_of(two.aw)
        two_matcher.sync()  # two applies kept's change now
        rebuilt = two_matcher.rebuilds

        assert changes.prune(engine, cutoff) >= 1
        assert logged(engine, old) == [] and logged(engine, kept) == ["upsert"]
        two_matcher.sync()
        assert two_matcher.rebuilds == rebuilt, "a node past the pruned entries has no need to rebuild"

        # two falls behind: a change it has not read is pruned away before it looks
        add(c1, {"value": f"late-{tag}.example"})
        assert changes.prune(engine, time.time() + 1) >= 2
        assert logged(engine, kept) == []
        two_matcher.sync()
        assert two_matcher.rebuilds == rebuilt + 1
        assert meets(c2, f"late-{tag}.example") == [f"late-{tag}.example"]
        # one made the pruned changes itself and applied them as they committed: no rebuild
        one_matcher = matcher_of(one.aw)
        mine = one_matcher.rebuilds
        one_matcher.sync()
        assert one_matcher.rebuilds == mine
        assert meets(c1, f"late-{tag}.example") == [f"late-{tag}.example"]

        # the log goes on after a pruning that emptied it: new entries are read, not skipped
        add(c1, {"value": f"after-{tag}.example"})
        wait_for(lambda: meets(c2, f"after-{tag}.example") == [f"after-{tag}.example"], timeout=8, interval=0.2)
        assert two_matcher.rebuilds == rebuilt + 1


def test_maintenance_prunes_the_log(nodes: tuple[RunningServer, ...]) -> None:
    one = nodes[0]
    chores = {c.name: c for c in one.aw.components["maintenance"].chores}
    assert "intel_changes" in chores
    tag = uuid.uuid4().hex[:8]
    with one.client() as c:
        add(c, {"value": f"fresh-{tag}.example"})
        fresh = ioc_id(c, f"fresh-{tag}.example")
    chores["intel_changes"].run(threading.Event())  # keeps a day: the fresh entry stays
    assert logged(one.aw.engine, fresh) == ["upsert"]


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"sync_s": 0}, "sync_s"),
        ({"sync_s": 3601}, "sync_s"),
        ({"sync_s": "soon"}, "sync_s"),
        ({"changes_keep_s": 10}, "changes_keep_s"),
        ({"changes_keep_s": 31 * 86_400}, "changes_keep_s"),
        ({"refresh_s": 0}, "refresh_s"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        IntelSettings(**given)
    assert [e["loc"][0] for e in err.value.errors()] == [field]


def test_the_defaults() -> None:
    s = IntelSettings()
    assert (s.sync_s, s.changes_keep_s) == (2.0, 86_400.0)
