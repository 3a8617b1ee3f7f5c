"""Several nodes learning one entity, on SQLite and PostgreSQL: what they persist is merged into
the stored baseline, so it holds what one node learning every event would (no last writer
wins); concurrent persists lose nothing; a reset (and a baseline begun again after it) still
wins over what a node learnt meanwhile."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert

from agentwatch.config import Settings
from agentwatch.events.entities import derive
from agentwatch.events.model import Event, parse_ts
from agentwatch.ueba import store
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.detector import UebaDetector
from agentwatch.ueba.schema import ueba_baselines
from agentwatch.ueba.settings import UebaSettings
from tests.support.server import run_server
from tests.ueba.helpers import UEBA, at, host_id, ingest, tool_event


def events(docs: list[dict[str, Any]]) -> list[Event]:
    out = []
    for i, d in enumerate(docs):
        ts = parse_ts(d["ts"])
        e = Event(
            body=d,
            event_id=f"merge-{i}-{ts}-{d['host']['hostname']}",
            event_type=d["event_type"],
            ts=ts,
            received_at=ts,
        )
        e.entities = derive(e)
        out.append(e)
    return out


def day_of(host: str, day: int) -> list[dict[str, Any]]:
    """2-5 calls in each working hour, three tools, and one agent now and then."""
    out = []
    for h in range(9, 18):
        for i, m in enumerate(range(0, 2 + (day + h) % 4 * 15, 15)):
            extra = {"agent": "claude-code"} if (h + i) % 5 == 0 else {}
            out.append(tool_event(host, at(day, h, m), ("read_file", "search", "write_file")[(h + i) % 3], **extra))
    return out


def stored_one(engine: Engine, host: str) -> Baseline:
    (b,) = store.fetch(engine, [host_id(host)], 32)
    return b


def assert_same(got: Baseline, want: Baseline) -> None:
    assert got.event_count == want.event_count
    assert got.hours == want.hours
    assert (got.first_seen, got.last_seen) == (want.first_seen, want.last_seen)
    assert got.sources == want.sources and got.templates == want.templates
    assert (got.buckets, got.bucket_start, got.bucket_count) == (want.buckets, want.bucket_start, want.bucket_count)
    assert got.ema == pytest.approx(want.ema, rel=1e-9)


def node(engine: Engine) -> UebaDetector:
    return UebaDetector(engine, UebaSettings(**UEBA), shared_store=True)


def test_two_nodes_each_learning_half_store_what_one_node_learns_from_all(engine: Engine) -> None:
    a, b, one = node(engine), node(engine), node(engine)
    for day in range(4):
        docs = day_of("split", day)
        a.detect(events(docs[0::2]))
        b.detect(events(docs[1::2]))
        a.persist()
        b.persist()
        one.detect(events(day_of("whole", day)))
        one.persist()
    assert_same(stored_one(engine, "split"), stored_one(engine, "whole"))
    # the last writer took the merged baseline: it scores against both nodes' learning
    held = b.get(host_id("split"))
    assert held is not None
    assert_same(held, stored_one(engine, "whole"))


def test_an_event_older_than_the_bucket_a_node_took_from_the_store_still_counts(engine: Engine) -> None:
    a, b, one = node(engine), node(engine), node(engine)
    docs = day_of("behind", 0)
    early = [d for d in docs if d["ts"] < at(0, 13)]
    late = [d for d in docs if d["ts"] >= at(0, 13)]
    b.detect(events(early[1::2]))
    b.persist()
    a.detect(events(early[0::2] + late[0::2]))
    a.persist()  # a takes the merged row: its bucket being filled is now 17:00
    b.detect(events(late[1::2]))
    b.persist()
    straggler = tool_event("behind", at(0, 12, 59))
    a.detect(events([straggler]))  # older than a's 17:00 bucket, but one of the kept buckets
    a.persist()
    whole = sorted([*day_of("behind-whole", 0), tool_event("behind-whole", at(0, 12, 59))], key=lambda d: d["ts"])
    one.detect(events(whole))
    one.persist()
    assert_same(stored_one(engine, "behind"), stored_one(engine, "behind-whole"))


def persist_at_once(n: UebaDetector, go: threading.Barrier, failed: list[BaseException]) -> None:
    go.wait()
    try:
        n.persist()
    except BaseException as exc:  # reported by the test
        failed.append(exc)


def test_concurrent_persists_lose_nothing(engine: Engine) -> None:
    hosts = [f"busy-{i}" for i in range(30)]
    nodes = [node(engine) for _ in range(3)]
    rounds = 6
    for r in range(rounds):
        for n in nodes:
            n.detect(events([tool_event(h, at(0, 9 + r, nodes.index(n))) for h in hosts]))
        go = threading.Barrier(len(nodes))
        failed: list[BaseException] = []
        threads = [threading.Thread(target=persist_at_once, args=(n, go, failed)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failed == []
    found = {b.entity_id: b.event_count for b in store.fetch(engine, [host_id(h) for h in hosts], 32)}
    assert found == {host_id(h): rounds * len(nodes) for h in hosts}


def test_a_reset_wins_over_what_a_node_learnt_meanwhile(engine: Engine) -> None:
    a, b = node(engine), node(engine)
    a.detect(events(day_of("reset", 0)))
    a.persist()
    b.detect(events([tool_event("reset", at(1, 10))]))  # b reads the row and learns one more
    b.persist()
    assert stored_one(engine, "reset").event_count == len(day_of("reset", 0)) + 1
    assert a.reset(host_id("reset"))
    b.detect(events([tool_event("reset", at(1, 11))]))
    assert b.persist() == 0  # gone from the store: b forgets it rather than write it back
    assert b.get(host_id("reset")) is None
    assert store.fetch(engine, [host_id("reset")], 32) == []


def test_a_baseline_begun_again_after_a_reset_is_not_merged_with_the_old_one(engine: Engine) -> None:
    a, b, c = node(engine), node(engine), node(engine)
    a.detect(events(day_of("again", 0)))
    a.persist()
    b.detect(events([tool_event("again", at(1, 10))]))
    b.persist()
    assert a.reset(host_id("again"))
    c.detect(events([tool_event("again", at(1, 12))]))  # learns afresh: a new row
    c.persist()
    b.detect(events([tool_event("again", at(1, 11))]))  # b still holds the old one
    b.persist()
    assert b.get(host_id("again")) is not None  # b forgot the old one, and read the new one back
    assert stored_one(engine, "again").event_count == 1


def test_two_servers_on_one_store_each_learning_half_store_what_one_learns(tmp_path: Path, database_url: str) -> None:
    def cfg(name: str) -> Settings:
        return Settings(
            data_dir=tmp_path / name,
            database_url=database_url,
            auth={"enabled": False},
            ueba={**UEBA, "persist_interval_s": 3600},  # written when /stats asks
        )

    with run_server(cfg("a")) as sa, run_server(cfg("b")) as sb, sa.client() as ca, sb.client() as cb:
        for day in range(4):
            docs = day_of("two-servers", day)
            ingest(ca, docs[0::2])
            ingest(cb, docs[1::2])
            ingest(ca, day_of("one-server", day))
            for c in (ca, cb):
                assert c.get("/api/v1/ueba/stats").json()["baselines"]["node"]["dirty"] == 0
        split = cb.get(f"/api/v1/ueba/baselines/{host_id('two-servers')}").json()
        whole = ca.get(f"/api/v1/ueba/baselines/{host_id('one-server')}").json()
    for doc in (split, whole):
        doc.pop("entity")
    assert split == whole
    assert split["event_count"] == sum(len(day_of("x", d)) for d in range(4))


def test_a_row_written_before_the_merge_is_read_and_merged_into(engine: Engine) -> None:
    old = node(engine)
    old.detect(events(day_of("legacy", 0)))
    b = old.get(host_id("legacy"))
    assert b is not None
    row = store.row_of(b)
    state = orjson.loads(row["state"])
    keep = ("hours", "sources", "templates", "ema", "buckets", "bucket_start", "bucket_count", "burst_bucket")
    row["state"] = orjson.dumps({k: state[k] for k in keep}).decode()  # the form written before
    with engine.begin() as conn:
        conn.execute(insert(ueba_baselines), [row])
    a, c = node(engine), node(engine)
    a.detect(events(day_of("legacy", 1)[0::2]))
    c.detect(events(day_of("legacy", 1)[1::2]))
    a.persist()
    c.persist()
    ref = node(engine)
    ref.detect(events(day_of("legacy-ref", 0) + day_of("legacy-ref", 1)))
    ref.persist()
    assert_same(stored_one(engine, "legacy"), stored_one(engine, "legacy-ref"))
    assert stored_one(engine, "legacy").version == 2
