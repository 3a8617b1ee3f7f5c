"""Defects found by attacking the UEBA detector and its stores directly (no server), on both
stores: a far-future event time, batch boundaries changing what is flagged, a batch naming more
entities than memory holds, the unbounded buffer of evicted baselines and its write (failed, on
the event loop, or racing an entity met again), a failed anomaly write, a deleted alert, and a
rare hour named once per flagged event."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from agentwatch.events.entities import derive
from agentwatch.events.model import Event, parse_ts
from agentwatch.store.alerts_schema import alerts
from agentwatch.ueba import anomalies, store
from agentwatch.ueba.detector import UebaDetector
from agentwatch.ueba.settings import UebaSettings
from tests.ueba.helpers import UEBA, at, host_id, ordinary_days, tool_event

SEQ = iter(range(10**9))


def events(docs: list[dict[str, Any]], received: str | None = None) -> list[Event]:
    """Events as the pipeline hands them over; received when sent (``received``) or at their own time."""
    out = []
    for d in docs:
        ts = parse_ts(d["ts"])
        got = parse_ts(received) if received else ts
        e = Event(body=d, event_id=f"hunt-{next(SEQ)}", event_type=d["event_type"], ts=ts, received_at=got)
        e.entities = derive(e)
        out.append(e)
    return out


def connect(host: str, ts: str) -> dict[str, Any]:
    return {"event_type": "network.connect", "ts": ts, "host": {"hostname": host}, "data": {"dest": {"port": 443}}}


def stored_counts(engine: Engine, hosts: list[str]) -> dict[str, int]:
    found = store.fetch(engine, [host_id(h) for h in hosts], 32)
    names = {host_id(h): h for h in hosts}
    return {names[b.entity_id]: b.event_count for b in found}


def test_a_far_future_event_time_does_not_end_volume_learning(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    assert det.detect(events(ordinary_days("future"))) == []
    # a clock gone wrong: stamped in the year 9000, received on day 3 at 10:00
    late = tool_event("future", "9000-01-01T10:00:00Z")
    det.detect(events([late], received=at(3, 10)))
    # 30 calls in the 11:00 bucket of day 3 against an EMA of 2: a burst (10 >= 3 x 2 and >= 10)
    found = det.detect(events([tool_event("future", at(3, 11, m)) for m in range(30)]))
    assert [r["kind"] for f in found for r in f.details["anomaly"]["reasons"]] == ["burst"]
    b = det.get(host_id("future"))
    assert b is not None and b.last_seen == parse_ts(at(3, 11, 29))


def test_a_future_event_time_does_not_end_the_warm_up(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events([tool_event("early", at(0, 9, m)) for m in range(24)]))  # 24 events in 23 minutes
    det.detect(events([tool_event("early", "2030-01-01T09:00:00Z")], received=at(0, 9, 30)))
    b = det.get(host_id("early"))
    assert b is not None and b.event_count == 25
    # taken at its receive time (09:30, no later than 5 minutes after): 30 minutes of 2 days
    assert b.last_seen == parse_ts(at(0, 9, 30))
    assert not b.warmed(24, 2 * 86_400)


def test_one_batch_or_two_flag_the_same_events_with_the_same_score(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events(ordinary_days("one-batch") + ordinary_days("two-batches")))
    # a new source (0.4, under the 0.5 threshold) at 11:00, then a call at 03:00 (rare hour, 0.6)
    (together,) = det.detect(events([connect("one-batch", at(3, 11)), tool_event("one-batch", at(3, 3))]))
    assert det.detect(events([connect("two-batches", at(3, 11))])) == []
    (apart,) = det.detect(events([tool_event("two-batches", at(3, 3))]))
    for f in (together, apart):
        a = f.details["anomaly"]
        assert a["score"] == 0.6 and [r["kind"] for r in a["reasons"]] == ["rare_hour"]
        assert len(a["event_ids"]) == 1 and a["ts"] == parse_ts(at(3, 3))
    assert together.rule_id == apart.rule_id == "AW-UEBA-RARE_HOUR"


def test_a_batch_naming_more_entities_than_memory_keeps_their_stored_baselines(engine: Engine) -> None:
    hosts = ["many-1", "many-2", "many-3"]
    first = UebaDetector(engine, UebaSettings(**UEBA))
    first.detect(events([e for h in hosts for e in ordinary_days(h)]))
    first.persist()
    assert stored_counts(engine, hosts) == dict.fromkeys(hosts, 54)
    # a restarted node that keeps two baselines in memory meets all three in one batch
    small = UebaDetector(engine, UebaSettings(**{**UEBA, "max_entities": 2}))
    small.load()
    small.detect(events([tool_event(h, at(3, 10)) for h in hosts]))
    small.persist()
    assert stored_counts(engine, hosts) == dict.fromkeys(hosts, 55)
    assert small.counts()["in_memory"] == 2


def test_baselines_evicted_before_their_write_stay_bounded_and_are_all_written(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**{**UEBA, "max_entities": 5}))
    hosts = [f"churn-{i}" for i in range(60)]
    for i in range(0, 60, 4):  # four new hosts a batch: each batch evicts four
        det.detect(events([tool_event(h, at(0, 9)) for h in hosts[i : i + 4]]))
        held = det.counts()
        assert held["in_memory"] <= 5
        assert held["dirty"] <= 5 + 5  # waiting for their write: the memory's and at most max_entities evicted
    det.persist()
    assert stored_counts(engine, hosts) == dict.fromkeys(hosts, 1)


def test_a_failed_anomaly_write_leaves_the_alert_to_the_recorder(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events(ordinary_days("lost-write")))
    (finding,) = det.detect(events([tool_event("lost-write", at(3, 3))]))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE ueba_anomalies"))
    with pytest.raises(Exception, match="ueba_anomalies"):  # the store's own error
        anomalies.record(engine, [finding])
    # rolled back: no alert stored, and the finding is not marked as stored, so the alert
    # recorder (the next finding sink) still stores it
    assert finding.stored_as is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alerts).where(alerts.c.type == "ueba")).scalar_one() == 0


def test_an_anomaly_whose_alert_was_deleted_no_longer_names_it(engine: Engine) -> None:
    from agentwatch.alerts.recorder import delete_alert

    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events(ordinary_days("gone-alert")))
    (finding,) = det.detect(events([tool_event("gone-alert", at(3, 3))]))
    anomalies.record(engine, [finding])
    aid = finding.details["anomaly"]["id"]
    alert_id = finding.stored_as[0]["id"] if finding.stored_as else None
    assert alert_id is not None and anomalies.get(engine, aid)["alert_id"] == alert_id  # type: ignore[index]
    day3 = parse_ts(at(3, 0))  # one bucket, day 3 (the anomaly is at 03:00)
    assert anomalies.timeline(engine, day3, 86_400, 1, None)[0]["alerts"] == 1
    assert anomalies.stats(engine)["alerts"] == 1
    assert delete_alert(engine, alert_id) is not None
    assert anomalies.get(engine, aid)["alert_id"] is None  # type: ignore[index]
    (bucket,) = anomalies.timeline(engine, day3, 86_400, 1, None)
    assert (bucket["anomalies"], bucket["alerts"]) == (1, 0)
    assert anomalies.stats(engine)["alerts"] == 0
    rows, total, _ = anomalies.search(engine, anomalies.AnomalyQuery(entity_id=host_id("gone-alert")))
    assert total == 1 and rows[0]["id"] == aid and rows[0]["alert_id"] is None
    # the entity's next anomaly opens a new alert, which its anomaly names
    (again,) = det.detect(events([tool_event("gone-alert", at(3, 23, 10), "new_tool")]))
    anomalies.record(engine, [again])
    fresh = anomalies.get(engine, again.details["anomaly"]["id"])
    assert fresh is not None and fresh["alert_id"] not in (None, alert_id)


def test_a_failed_write_keeps_evicted_baselines_for_the_next_one(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**{**UEBA, "max_entities": 3}))
    hosts = [f"retry-{i}" for i in range(5)]
    det.detect(events([tool_event(h, at(0, 9)) for h in hosts]))  # three stay in memory, two wait evicted
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ueba_baselines RENAME TO ueba_baselines_away"))
    with pytest.raises(Exception, match="ueba_baselines"):  # the store's own error
        det.persist()
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ueba_baselines_away RENAME TO ueba_baselines"))
    assert det.persist() == 5
    assert stored_counts(engine, hosts) == dict.fromkeys(hosts, 1)


def test_an_entity_met_again_while_its_baseline_is_being_written_keeps_what_it_learnt(engine: Engine) -> None:
    import threading
    import time

    det = UebaDetector(engine, UebaSettings(**{**UEBA, "max_entities": 1}))
    det.detect(events([tool_event("writing-1", at(0, 9))]))
    blocker = engine.connect()
    if engine.dialect.name == "sqlite":
        blocker.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        blocker.begin()
        blocker.execute(text("LOCK TABLE ueba_baselines IN EXCLUSIVE MODE"))  # reads still go on
    writer = threading.Thread(target=det.persist)
    writer.start()  # takes its rows, then waits for the lock
    time.sleep(0.5)
    det.detect(events([tool_event("writing-2", at(0, 9, 1))]))  # evicts writing-1, written meanwhile
    det.detect(events([tool_event("writing-1", at(0, 9, 2))]))  # met again before its row is stored
    blocker.rollback()
    blocker.close()
    writer.join(30)
    det.persist()
    assert stored_counts(engine, ["writing-1", "writing-2"]) == {"writing-1": 2, "writing-2": 1}


def test_a_write_of_evicted_baselines_never_waits_on_the_event_loop(engine: Engine) -> None:
    import asyncio
    import time

    det = UebaDetector(engine, UebaSettings(**{**UEBA, "max_entities": 2}))
    det.load()
    blocker = engine.connect()
    if engine.dialect.name == "sqlite":
        blocker.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        blocker.begin()
        blocker.execute(text("LOCK TABLE ueba_baselines IN EXCLUSIVE MODE"))

    async def small_batch_inline() -> float:  # as the pipeline runs a small SQLite batch
        started = time.monotonic()
        det.detect(events([tool_event(f"loop-{i}", at(0, 9)) for i in range(4)]))  # two evicted: a write
        return time.monotonic() - started

    loop = asyncio.new_event_loop()
    took = loop.run_until_complete(small_batch_inline())
    blocker.rollback()
    blocker.close()
    loop.run_until_complete(loop.shutdown_default_executor())  # the handed-over write lands
    loop.close()
    assert took < 2.0  # the store's lock is held for good here: waiting for it would take 30 s
    det.persist()
    assert stored_counts(engine, [f"loop-{i}" for i in range(4)]) == dict.fromkeys([f"loop-{i}" for i in range(4)], 1)


def test_a_rare_hour_is_named_once_however_many_of_its_events_a_batch_holds(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events(ordinary_days("twice-at-two")))
    # 02:00 held none of 54 events, then 1 of 55 (1.8 % < 2 %): both calls are flagged
    (f,) = det.detect(events([tool_event("twice-at-two", at(3, 2, 0)), tool_event("twice-at-two", at(3, 2, 1))]))
    a = f.details["anomaly"]
    assert a["reasons"] == [{"kind": "rare_hour", "hours": [{"hour": 2, "share": 0.0}]}]
    assert len(a["event_ids"]) == 2
    assert f.message.endswith("activity at rare hours 02h UTC")
