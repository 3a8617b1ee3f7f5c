"""Hunting defects in the entity index and routes (/api/v1/entities) and in the ATT&CK coverage
matrix (/api/v1/attack/coverage), as a careless or hostile client would use them; on SQLite and
PostgreSQL, through real stores and a real server.

Expected values are worked out from what each test stores, never read from the code's output.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, update

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.detect import coverage
from agentwatch.entities.index import EntityIndexStage
from agentwatch.events.entities import derive, entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.entities_schema import entities
from agentwatch.store.events import commit_batch
from tests.detect.helpers import with_detection
from tests.soc.helpers import PASSWORD, auth_server
from tests.support.server import run_server

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z
NS = 1_000_000_000


def at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def host_event(event_id: str, ts: float, *hosts: str) -> Event:
    """A network event naming the host ``hosts[0]`` and the others as destination domains."""
    body: dict[str, Any] = {"event_id": event_id, "event_type": "network.connect", "host": {"hostname": hosts[0]}}
    body["data"] = {"dest": {"domain": hosts[1]}} if len(hosts) > 1 else {}
    e = Event(body=body, event_id=event_id, event_type="network.connect", ts=ts, received_at=ts)
    e.entities = derive(e)
    return e


def index_rows(engine: Any) -> dict[tuple[str, str], tuple[float, float, int]]:
    with engine.connect() as conn:
        found = conn.execute(select(entities)).all()
    return {(r.type, r.value): (r.first_seen, r.last_seen, r.event_count) for r in found}


def commit_overlapping_batches(engine: Any, in_id_order: bool) -> list[BaseException]:
    """Eight writers commit overlapping slices of 200 events at once, 15 events a commit, each
    slice shuffled (and each commit's events put back in event id order when ``in_id_order``).
    Event i names the host h(i % 5) and the domain d(i % 3).example, at T0 + i. Every event
    must be stored by exactly one writer and every entity must count exactly the events naming
    it, with the earliest and latest of their times. Returns the writers' errors."""
    everything = [host_event(f"ev{i:03d}", T0 + i, f"h{i % 5}", f"d{i % 3}.example") for i in range(200)]
    rng = random.Random(7)
    slices = []
    for w in range(8):
        part = list(everything[w * 20 : w * 20 + 60])  # overlaps the next two writers' slices
        rng.shuffle(part)
        slices.append(part)
    stored: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(slices))

    def writer(mine: list[Event]) -> None:
        try:
            start.wait()
            for j in range(0, len(mine), 15):
                batch = mine[j : j + 15]
                if in_id_order:
                    batch = sorted(batch, key=lambda e: e.event_id)
                fresh = commit_batch(engine, batch, [EntityIndexStage().in_commit])
                stored.extend(e.event_id for e in fresh)
        except Exception as exc:  # noqa: BLE001 (the test reports it)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        return errors
    assert sorted(stored) == [f"ev{i:03d}" for i in range(200)]  # each stored once, by one writer
    # h0: events 0, 5, .. 195 (40 of them); d0: 0, 3, .. 198 (67); d2: 2, 5, .. 197 (66)
    expected = {("host", f"h{k}"): (T0 + k, T0 + 195 + k, 40) for k in range(5)}
    expected[("domain", "d0.example")] = (T0, T0 + 198, 67)
    expected[("domain", "d1.example")] = (T0 + 1, T0 + 199, 67)
    expected[("domain", "d2.example")] = (T0 + 2, T0 + 197, 66)
    assert index_rows(engine) == expected
    return []


def test_concurrent_commits_of_overlapping_batches_count_each_event_once(engine):
    """The index's own writes take their row locks in one order: no deadlock, no lost count."""
    assert commit_overlapping_batches(engine, in_id_order=True) == []


def test_concurrent_commits_of_overlapping_batches_in_any_order_do_not_deadlock(engine):
    # the events' rows go in in id order whatever the batch's order (store.events)
    assert commit_overlapping_batches(engine, in_id_order=False) == []


@pytest.fixture(scope="module")
def srv(module_database_url, tmp_path_factory):
    """One server per store for the route tests (each keeps to event times of its own)."""
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base)) as s:
        yield s


# ---- ATT&CK coverage -------------------------------------------------------------------------

_serial = itertools.count()


def store_alert(engine: Any, tags: list[Any], first: float, last: float | None = None) -> str:
    """A real alert (through the recorder) with its own rule and dedup key, spanning first..last
    (a second finding of the same rule and key within the dedup window extends its span)."""
    n = next(_serial)
    alert_id = ""
    for k, ts in enumerate([first] if last is None else [first, last]):
        event = Event(body={}, event_id=f"hunt-e{n}-{k}", event_type="process.exec", ts=ts, received_at=ts)
        finding = Finding("test", f"HUNT-RULE-{n}", f"Hunt {n}", 5, [event], alert_type="sigma", tags=tags)
        finding.dedup_key = f"hunt-{n}"
        ((alert, is_new),) = store_findings(engine, [finding], 300)
        assert is_new == (k == 0) and alert_id in ("", alert["id"])
        alert_id = alert["id"]
    return alert_id


def coverage_of(srv: Any, since: str, until: str) -> dict[str, Any]:
    with srv.client() as c:
        r = c.get("/api/v1/attack/coverage", params={"since": since, "until": until})
    assert r.status_code == 200, r.text
    return r.json()


def alerts_per_technique(doc: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(group, technique id) -> alerts, sub-techniques included, for every technique with alerts."""
    out = {}
    for group, row in [*((t["shortname"], t) for t in doc["tactics"]), ("unmapped", doc["unmapped"])]:
        for t in row["techniques"]:
            for x in [t, *t["subtechniques"]]:
                if x["alerts"]:
                    out[(group, x["id"])] = x["alerts"]
    return out


def test_alert_tags_count_in_any_letter_case_on_both_stores(srv):
    """A rule's tags are read without regard to case (``ATTACK.T1001`` is T1001), and so must an
    alert's: the alerts below are two T1001 alerts and one T1041 Exfiltration alert, on SQLite
    (whose LIKE ignores ASCII case) and on PostgreSQL (whose LIKE does not) alike."""
    day = T0 - 400 * 86400  # a day of its own, far from the other tests' alerts
    store_alert(srv.aw.engine, ["ATTACK.T1001"], day + 10)
    store_alert(srv.aw.engine, ["Attack.Exfiltration", "Attack.T1041"], day + 20)
    store_alert(srv.aw.engine, ["attack.t1001"], day + 30)
    store_alert(srv.aw.engine, [" attack.t1001 "], day + 40)  # as a rule's tag: spaces around are ignored
    doc = coverage_of(srv, at(day), at(day + 86400))
    assert alerts_per_technique(doc) == {("unmapped", "T1001"): 3, ("exfiltration", "T1041"): 1}
    assert doc["totals"]["alerts"] == 4


def test_alerts_with_malformed_or_odd_tags_are_skipped_not_a_5xx(srv):
    """Tags written by another writer (or a torn row): not JSON, JSON but not a list, a list
    holding non-strings. Only the list's ATT&CK strings count: here one T1005 alert (whose
    other tags are a number, null, an object and a list) and the well-formed T1006 alert."""
    day = T0 - 420 * 86400
    odd = {
        '{"attack.t1001": 1': None,  # not JSON
        '"attack.t1002"': None,  # a JSON string, not a list
        '{"attack.t1003": true}': None,  # an object
        '[1, null, {"attack.t1004": 1}, ["attack.t1004"], "attack.t1005"]': "T1005",
    }
    ids = [store_alert(srv.aw.engine, ["attack.t1099"], day + 10 + i) for i in range(len(odd))]
    with srv.aw.engine.begin() as conn:
        for alert_id, text in zip(ids, odd, strict=True):
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(tags=text))
    store_alert(srv.aw.engine, ["attack.t1006"], day + 100)
    doc = coverage_of(srv, at(day), at(day + 86400))
    assert alerts_per_technique(doc) == {("unmapped", "T1005"): 1, ("unmapped", "T1006"): 1}
    assert doc["totals"]["alerts"] == 2


def test_a_window_of_one_instant_and_offsets_in_the_timestamps(srv):
    """since == until is a window of one instant: an alert spanning it counts, one ending just
    before it does not. The same instant written with a +02:00 offset is the same window."""
    day = T0 - 440 * 86400
    store_alert(srv.aw.engine, ["attack.t1010"], day + 100, day + 200)  # spans day+150
    store_alert(srv.aw.engine, ["attack.t1011"], day + 100, day + 149)  # ends before it
    store_alert(srv.aw.engine, ["attack.t1012"], day + 150)  # exactly at it
    instant = at(day + 150)
    doc = coverage_of(srv, instant, instant)
    assert doc["window"] == {"since": instant, "until": instant}
    assert alerts_per_technique(doc) == {("unmapped", "T1010"): 1, ("unmapped", "T1012"): 1}
    shifted = datetime.fromtimestamp(day + 150, timezone(timedelta(hours=2))).isoformat()
    assert shifted.endswith("+02:00")
    assert coverage_of(srv, shifted, shifted) == doc


# ---- entity routes ---------------------------------------------------------------------------


def net(event_id: str, when: str, host: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "network.connect",
        "ts": when,
        "host": {"hostname": host},
        "data": {"dest": {"ip": "10.0.0.1"}, "protocol": "tcp", **extra},
    }


def ingest(srv: Any, events: list[dict[str, Any]]) -> None:
    with srv.client() as c:
        r = c.post("/api/v1/ingest", json=events)
    assert r.status_code == 200 and r.json()["stored"] == len(events), r.text


def test_timeline_windows_at_the_ends_and_inclusive_to_the_microsecond(srv):
    """Event times are kept (and shown) to the microsecond: a window of exactly one event's
    instant (in ns) holds it, one between two events a microsecond apart holds neither, however
    close its ends are to them (a float of seconds tells apart only about 240 ns today: without
    care the bounds round onto the events' times); 0 .. 2^63-1 holds every event."""
    ingest(
        srv,
        [
            net("us-1", "2026-05-01T00:00:00.123456Z", "micro-host"),
            net("us-2", "2026-05-01T00:00:00.123457Z", "micro-host"),
            net("us-3", "2026-05-01T00:00:01.999999Z", "micro-host"),
        ],
    )
    eid = entity_id("host", "micro-host")
    base = 1_777_593_600 * NS  # 2026-05-01T00:00:00Z

    def ids(**params: Any) -> list[str]:
        with srv.client() as c:
            r = c.get(f"/api/v1/entities/{eid}/timeline", params=params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["events"]]

    assert ids(start_ns=0, end_ns=2**63 - 1) == ["us-3", "us-2", "us-1"]
    assert ids(start_ns=base + 123_456_000, end_ns=base + 123_456_000) == ["us-1"]
    assert ids(start_ns=base + 123_457_000, end_ns=base + 123_457_000) == ["us-2"]
    assert ids(start_ns=base + 123_456_001, end_ns=base + 123_456_999) == []
    assert ids(end_ns=base + 1_999_999_000) == ["us-3", "us-2", "us-1"]
    assert ids(start_ns=base + 1_999_999_001) == []
    assert ids(start_ns=2**63 - 1) == [] and ids(end_ns=0) == []


def test_search_folds_only_a_to_z_and_takes_256_characters_of_any_width(srv):
    ingest(srv, [net("uc-1", "2026-05-01T00:00:00Z", "École-01"), net("uc-2", "2026-05-01T00:00:00Z", "ẞtraße")])

    def values(q: str) -> list[str]:
        with srv.client() as c:
            r = c.get("/api/v1/entities/search", params={"q": q})
        assert r.status_code == 200, r.text
        return [e["value"] for e in r.json()["entities"]]

    assert values("École-01") == values("ÉCOLE-01") == values("ÉcOlE-01") == ["École-01"]  # C, O, L, E fold
    assert values("école-01") == [] and values("COLE-01") == ["École-01"]  # É and é do not
    assert values("ẞTRASSE") == [] and values("ẞTRAßE") == ["ẞtraße"] and values("ẞtraSSe") == []
    for wide in ("é", "\U0001f600", "\U0010ffff"):
        assert values(wide * 256) == []
        with srv.client() as c:
            r = c.get("/api/v1/entities/search", params={"q": wide * 257})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("q:"), r.text


def test_a_timeline_answer_is_bounded_in_bytes_not_only_in_events(srv):
    """limit goes to 10,000 and an event may hold 1 MiB: without a bound on bytes one request
    could make the server read and send some 10 GiB. 24 events of about 900,000 bytes name the
    host; the answer stops within 16 MiB of event text: 18 events (18 x 900,000 = 16.2 MB fits,
    19 x 900,000 = 17.1 MB does not), newest first, with ``more`` true."""
    payload = "x" * 900_000
    for part in range(4):  # 6 events a request: under the 10 MiB body limit
        ingest(
            srv,
            [
                net(f"big-{n:02d}", f"2026-05-02T00:00:{n:02d}Z", "big-host", note=payload)
                for n in range(part * 6, part * 6 + 6)
            ],
        )
    eid = entity_id("host", "big-host")
    with srv.client() as c:
        r = c.get(f"/api/v1/entities/{eid}/timeline", params={"limit": 10_000})
        one = c.get(f"/api/v1/entities/{eid}/timeline", params={"limit": 1})
    assert r.status_code == 200, r.text[:300]
    doc = r.json()
    assert [e["id"] for e in doc["events"]] == [f"big-{n:02d}" for n in range(23, 5, -1)]
    assert doc["meta"]["count"] == 18 and doc["meta"]["more"] is True
    assert doc["related"] == [{"id": entity_id("ip", "10.0.0.1"), "type": "ip", "value": "10.0.0.1", "count": 18}]
    assert len(r.content) < 17 * 2**20
    assert [e["id"] for e in one.json()["events"]] == ["big-23"] and one.json()["meta"]["more"] is True


def host_finding(rule: str, severity: int, host: str, ts: float) -> Finding:
    body = {"event_id": f"rf-{rule}", "event_type": "network.connect", "host": {"hostname": host}, "data": {}}
    e = Event(body=body, event_id=body["event_id"], event_type="network.connect", ts=ts, received_at=ts)
    e.entities = derive(e)
    return Finding(detector="test", rule_id=rule, title=rule, severity=severity, events=[e], ts=ts)


def test_risk_history_buckets_hold_their_start_and_the_present(srv):
    """6h at 1h: six buckets ending with the one holding now. An alert at the first bucket's
    very start is in it, one half a second earlier is in none, one at the present hour's start
    is in the last bucket."""
    now = time.time()
    hour = math.floor(now / 3600) * 3600
    first = hour - 5 * 3600
    ingest(srv, [net("risk-hunt", at(now - 10), "risk-hunt-host")])
    store_findings(
        srv.aw.engine,
        [
            host_finding("HUNT-R-A", 4, "risk-hunt-host", first),
            host_finding("HUNT-R-B", 9, "risk-hunt-host", first - 0.5),
            host_finding("HUNT-R-C", 3, "risk-hunt-host", hour),
        ],
        300.0,
    )
    eid = entity_id("host", "risk-hunt-host")
    with srv.client() as c:
        r = c.get(f"/api/v1/entities/{eid}/risk-history", params={"range": "6h", "resolution": "1h"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["start"], doc["end"]) == (at(first), at(hour + 3600))
    assert [b["start_ns"] for b in doc["buckets"]] == [(first + i * 3600) * NS for i in range(6)]
    assert [(b["risk"], b["alerts"]) for b in doc["buckets"]] == [(4, 1), (0, 0), (0, 0), (0, 0), (0, 0), (3, 1)]


def search_values(srv: Any, q: str) -> list[tuple[str, str, int]]:
    with srv.client() as c:
        r = c.get("/api/v1/entities/search", params={"q": q, "limit": 100})
    assert r.status_code == 200, r.text
    return [(e["type"], e["value"], e["event_count"]) for e in r.json()["entities"]]


def test_odd_entity_values_are_indexed_or_left_out_and_the_events_stored(srv):
    """A value of 512 characters (the widest kept) is indexed, one of 513 is not an entity at
    all; a NUL inside a value is kept (as U+FFFD on PostgreSQL, as every stored text there);
    every event is stored and counted once."""
    widest, too_wide = "w" * 511 + "Z", "v" * 513
    ingest(
        srv,
        [
            net("odd-1", "2026-05-04T00:00:00Z", widest),
            net("odd-2", "2026-05-04T00:00:01Z", too_wide),
            net("odd-3", "2026-05-04T00:00:02Z", "nul\x00host"),
            net("odd-4", "2026-05-04T00:00:03Z", "nul\x00host"),
        ],
    )
    assert search_values(srv, "W" * 256) == search_values(srv, entity_id("host", widest)) == [("host", widest, 1)]
    assert search_values(srv, "v" * 256) == []
    nul = "\ufffd" if srv.aw.engine.dialect.name == "postgresql" else "\x00"
    assert search_values(srv, "nul\x00host") == [("host", f"nul{nul}host", 2)]
    with srv.client() as c:
        stored = c.get("/api/v1/events", params={"since": "2026-05-04T00:00:00Z", "until": "2026-05-04T00:00:03Z"})
    assert sorted(e["id"] for e in stored.json()["events"]) == ["odd-1", "odd-2", "odd-3", "odd-4"]


def test_a_process_with_an_overlong_exe_is_named_by_its_name(srv):
    event = net("odd-proc", "2026-05-04T00:01:00Z", "proc-host")
    event["process"] = {"pid": 4242, "name": "hunt-proc", "exe": "/opt/" + "x" * 600}
    ingest(srv, [event])
    assert search_values(srv, "hunt-proc") == [("process", "hunt-proc", 1)]


def test_the_coverage_budget_is_per_user_not_per_sign_in(database_url, tmp_path):
    """Signing in again must not buy a fresh budget: the ten requests a minute are the user's,
    whichever of their sessions sends them (an API key has its own)."""
    with auth_server(database_url, tmp_path) as s:
        c = s.client
        login = {"email": "admin@example.com", "password": PASSWORD}
        second = {"Authorization": f"Bearer {c.post('/api/v1/auth/login', json=login).json()['access_token']}"}
        assert second != s.admin
        for i in range(10):
            assert c.get("/api/v1/attack/coverage", headers=s.admin).status_code == 200, i
        limited = c.get("/api/v1/attack/coverage", headers=second)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "RATE_LIMITED", limited.text
        _, key = s.key("alerts:read", "rules:read")
        assert c.get("/api/v1/attack/coverage", headers=key).status_code == 200


def test_the_alert_bound_keeps_the_newest_and_says_it_truncated(srv):
    """At most ``limit`` alerts are read, the newest (by last_seen) first, and the answer says
    more were left; alerts without an ATT&CK tag are not read at all."""
    day = T0 - 460 * 86400
    for i, tags in enumerate([["attack.t1020"], ["attack.t1021"], ["attack.t1022"], ["not-attack"], ["atlas.x"]]):
        store_alert(srv.aw.engine, tags, day + 10 * (i + 1))
    texts, truncated = coverage.alert_tags(srv.aw.engine, day, day + 86400, limit=2)
    assert (sorted(texts), sum(texts.values()), truncated) == (['["attack.t1021"]', '["attack.t1022"]'], 2, True)
    texts, truncated = coverage.alert_tags(srv.aw.engine, day, day + 86400, limit=3)
    assert (sum(texts.values()), truncated) == (3, False)
