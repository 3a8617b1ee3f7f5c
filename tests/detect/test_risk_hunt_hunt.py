"""Hostile and careless use of ``/api/v1/entity-risk`` and ``POST /api/v1/hunt``: addresses and
names in other spellings than the entity index keeps, values holding slashes, the cost of one
entity's score, and what a model's answer may make the server echo. Real server and stores
(SQLite and PostgreSQL); the LLM backend is a fake OpenAI-compatible server on 127.0.0.11."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import insert

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import LlmSettings, Settings
from agentwatch.detect.settings import DetectionSettings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.alerts_schema import alerts
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, run_server

FAKE_HOST = "127.0.0.11"
HUNT = "/api/v1/hunt"
HL = 3600.0
T = 1_800_000_000.0
_serial = itertools.count()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm(FAKE_HOST) as f:
        yield f


@pytest.fixture(scope="module")
def srv(fake: FakeLlm, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    llm = LlmSettings(enabled=True, base_url=fake.url, model="hunter-2", allow_private=True, timeout_s=5.0)
    detection = DetectionSettings(atr_bundled=False, risk_half_life_s=HL)
    with run_server(cfg.model_copy(update={"llm": llm, "detection": detection})) as s:
        yield s


def alert_on(srv: RunningServer, kind: str, value: str, severity: int, ts: float) -> str:
    n = next(_serial)
    ent = {"type": kind, "value": value, "id": entity_id(kind, value)}
    event = Event(body={}, event_id=f"rhh-e{n}", event_type="ai.request", ts=ts, received_at=ts, entities=[ent])
    finding = Finding("t", f"rhh-rule-{n}", f"Alert {n}", severity, [event], alert_type="atr", dedup_key=f"rhh-{n}")
    ((alert, _),) = store_findings(srv.aw.engine, [finding], 300)
    return alert["id"]


def ingest(c: Any, *events: dict[str, Any]) -> None:
    r = c.post("/api/v1/ingest", json=list(events))
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def connect(host: str, ip: str) -> dict[str, Any]:
    return {"event_type": "network.connect", "host": {"hostname": host}, "data": {"dest": {"ip": ip, "port": 443}}}


# --- entity risk -------------------------------------------------------------------------------


def test_an_address_in_another_spelling_finds_the_entity_the_index_keeps(srv: RunningServer) -> None:
    """The index keeps an IPv6 address compressed in lower case, an IPv4-mapped one as IPv4, a
    domain in lower case without its final dot; /entity-risk/{value} must find each however the
    analyst spells it (scores: 7 at the reference time, the only alert of each)."""
    n = uuid.uuid4().int % 250 + 1
    v6, v4, domain = f"2001:db8::{n:x}", f"10.77.3.{n}", f"risk-{uuid.uuid4().hex[:6]}.example"
    for kind, value in (("ip", v6), ("ip", v4), ("domain", domain)):
        alert_on(srv, kind, value, 7, T - 100)
    with srv.client() as c:
        ingest(c, connect("h-v6", v6), connect("h-v4", v4))
        ingest(
            c,
            {
                "event_type": "network.dns",
                "host": {"hostname": "h-d"},
                "data": {"query_name": domain, "query_type": "A"},
            },
        )
        for spelling, kind, value in (
            (v6.upper(), "ip", v6),
            (f"2001:0db8:0:0:0:0:0:{n:x}", "ip", v6),
            (f"::ffff:{v4}", "ip", v4),
            (domain.upper() + ".", "domain", domain),
        ):
            r = c.get(f"/api/v1/entity-risk/{spelling}", params={"at": "2027-01-15T08:00:00Z"})
            assert r.status_code == 200, (spelling, r.text)
            doc = r.json()["entity"]
            assert (doc["entity_id"], doc["type"], doc["value"]) == (entity_id(kind, value), kind, value), spelling
            assert doc["alerts"] == 1 and doc["score"] > 0, spelling


def test_a_value_holding_slashes_is_found_percent_encoded(srv: RunningServer) -> None:
    """A process or file entity's value is a path: its slashes come percent-encoded in the URL."""
    exe = f"/opt/rhh-{uuid.uuid4().hex[:6]}/bin/tool"
    alert_on(srv, "process", exe, 5, T)
    with srv.client() as c:
        ingest(c, {"event_type": "process.exec", "host": {"hostname": "h-p"}, "process": {"exe": exe, "pid": 4}})
        r = c.get("/api/v1/entity-risk/" + exe.replace("/", "%2F"), params={"at": "2027-01-15T08:00:00Z"})
        assert r.status_code == 200, r.text
        doc = r.json()["entity"]
        assert (doc["type"], doc["value"], doc["alerts"], doc["score"]) == ("process", exe, 1, 5.0)


def test_at_before_every_alert_or_far_away_scores_nothing_and_never_fails(srv: RunningServer) -> None:
    host = f"rhh-far-{uuid.uuid4().hex[:6]}"
    alert_on(srv, "host", host, 9, T)
    with srv.client() as c:
        ingest(c, {"event_type": "process.exec", "host": {"hostname": host}, "data": {"exe": "/bin/true"}})
        for at in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2027-01-15T09:00:00+05:30"):
            r = c.get(f"/api/v1/entity-risk/{host}", params={"at": at})
            assert r.status_code == 200, (at, r.text)
            assert (r.json()["entity"]["score"], r.json()["entity"]["alerts"]) == (0.0, 0), at
            assert c.get("/api/v1/entity-risk", params={"at": at}).status_code == 200
        # the offset is honoured: 08:00+05:30 is 02:30Z, 2.5 h = 2.5 half-lives after the alert's 00:00Z
        r = c.get(f"/api/v1/entity-risk/{host}", params={"at": "2027-01-15T08:00:00+05:30"})
        assert r.json()["meta"]["at"] == "2027-01-15T02:30:00Z"


def test_one_entity_reads_the_alerts_once_not_once_per_entity_kind(srv: RunningServer) -> None:
    """A value names up to nine entity ids (one per kind); scoring each with its own read of up
    to 100,000 alerts made one request cost nine. With 20,000 alerts in the horizon, one entity's
    score must cost about what the whole ranking costs (which reads them once)."""
    at = 1_900_000_000.0
    host = f"rhh-many-{uuid.uuid4().hex[:6]}"
    eid = entity_id("host", host)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "dedup_key": f"rhh-many-{i}",
            "type": "atr",
            "detector": "t",
            "rule_id": "rhh-many",
            "title": "many",
            "severity": 3,
            "first_seen": at - i,
            "last_seen": at - i,
            "created_at": at,
            "updated_at": at,
            "entity_ids": f"{eid} {uuid.uuid4()}",
        }
        for i in range(20_000)
    ]
    with srv.aw.engine.begin() as conn:
        conn.execute(insert(alerts), rows)
    stamp = "2030-03-17T17:46:40Z"  # 1,900,000,000
    with srv.client() as c:
        ingest(c, {"event_type": "process.exec", "host": {"hostname": host}, "data": {"exe": "/bin/true"}})
        c.get("/api/v1/entity-risk", params={"at": stamp})  # warm up
        started = time.perf_counter()
        ranked = c.get("/api/v1/entity-risk", params={"at": stamp, "limit": 1})
        ranking = time.perf_counter() - started
        started = time.perf_counter()
        one = c.get(f"/api/v1/entity-risk/{host}", params={"at": stamp})
        single = time.perf_counter() - started
    assert ranked.json()["entities"][0]["entity_id"] == eid
    assert one.status_code == 200 and one.json()["entity"]["alerts"] == 20_000
    assert single < 2 * ranking + 0.1, (single, ranking)


# --- hunt --------------------------------------------------------------------------------------


def test_a_scoped_ipv6_question_finds_the_address_the_index_keeps(srv: RunningServer) -> None:
    ip = f"fe80::{uuid.uuid4().int % 60000 + 1:x}"
    with srv.client() as c:
        ingest(c, connect("h-scope", ip))
        r = c.post(HUNT, json={"query": f"{ip.upper()}%eth0"})
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == "entity" and r.json()["entity"]["value"] == ip


def test_a_model_naming_an_address_in_another_spelling_finds_its_events_and_alerts(
    srv: RunningServer, fake: FakeLlm
) -> None:
    n = uuid.uuid4().int % 60000 + 1
    ip = f"2001:db8:77::{n:x}"
    alert_on(srv, "ip", ip, 6, time.time())
    with srv.client() as c:
        ingest(c, connect("h-llm", ip))
        fake.answer = orjson.dumps({"entity": ip.upper(), "window_minutes": 60}).decode()
        r = c.post(HUNT, json={"query": "who connected to that address"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["mode"] == "llm" and doc["meta"]["events_total"] == 1
        assert doc["events"][0]["event_type"] == "network.connect"
        assert len(doc["alerts"]) == 1


def test_a_refused_answer_echoes_no_unbounded_text_of_the_model(srv: RunningServer, fake: FakeLlm) -> None:
    key = "k" * 100_000
    fake.answer = orjson.dumps({key: 1}).decode()
    with srv.client() as c:
        r = c.post(HUNT, json={"query": "anything odd today"})
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("llm: the answer's hunt filters are refused (") and len(message) < 400


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        ('{"entity": {"type": "host"}}', "entity"),
        ('{"severity": 100000000000000000000000000}', "severity"),
        ('{"window_minutes": 129601}', "window_minutes"),
        ('{"window_minutes": 0}', "window_minutes"),
        ('{"window_minutes": true}', "window_minutes"),
        ('{"q": "x\\u0000y"}', "q"),
        ('{"entity": "web\\u001b[2J"}', "entity"),
        ("{" * 500_000 + "}" * 500_000, "not valid JSON"),
    ],
)
def test_odd_answers_are_502_naming_the_rule(srv: RunningServer, fake: FakeLlm, answer: str, rule: str) -> None:
    fake.answer = answer
    with srv.client() as c:
        started = time.perf_counter()
        r = c.post(HUNT, json={"query": "strange things this week"})
        assert time.perf_counter() - started < 5
    assert r.status_code == 502, r.text
    assert rule in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "answer",
    [
        '[{"template_id": "network.*", "window_minutes": 129600}]',
        '{"template_id": "agent.tool_call", "template_id": "network.*", "q": "\u00fcber-\u4e2d"}',
    ],
)
def test_answers_wrapped_or_repeating_a_key_are_taken_as_json_reads_them(
    srv: RunningServer, fake: FakeLlm, answer: str
) -> None:
    fake.answer = answer
    with srv.client() as c:
        r = c.post(HUNT, json={"query": "network things"})
    assert r.status_code == 200, r.text
    assert r.json()["filters"]["template_id"] == "network.*"  # the last of a repeated key, as JSON parsers do
    assert all(e["event_type"].startswith("network.") for e in r.json()["events"])


def test_an_empty_entity_in_the_path_is_400_naming_it(srv: RunningServer) -> None:
    with srv.client() as c:
        r = c.get("/api/v1/entity-risk/")
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("entity:")


def test_a_model_naming_a_value_of_two_kinds_answers_the_alerts_of_the_kind_its_events_are(
    srv: RunningServer, fake: FakeLlm
) -> None:
    # the value names a host (with events) and a user (with an alert only): the events come from
    # the host, so the alerts answered are the host's, not the user's of the same spelling
    value = f"dual-{uuid.uuid4().hex[:8]}"
    host_alert = alert_on(srv, "host", value, 6, time.time())
    alert_on(srv, "user", value, 6, time.time())
    with srv.client() as c:
        ingest(c, connect(value, "192.0.2.7"))
        fake.answer = orjson.dumps({"entity": value, "window_minutes": 60}).decode()
        r = c.post(HUNT, json={"query": "what did that machine do"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["meta"]["events_total"] == 1 and doc["meta"]["entity_id"] == entity_id("host", value)
        assert [a["id"] for a in doc["alerts"]] == [host_alert]


def test_a_model_naming_a_value_without_events_answers_the_alerts_of_the_first_kind_that_has_some(
    srv: RunningServer, fake: FakeLlm
) -> None:
    value = f"lone-{uuid.uuid4().hex[:8]}"
    user_alert = alert_on(srv, "user", value, 6, time.time())
    alert_on(srv, "host", value, 6, time.time())  # "user" comes before "host" in the kinds tried
    with srv.client() as c:
        fake.answer = orjson.dumps({"entity": value, "window_minutes": 60}).decode()
        r = c.post(HUNT, json={"query": "anything about that one"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["events"] == [] and doc["meta"]["entity_id"] == entity_id("user", value)
        assert [a["id"] for a in doc["alerts"]] == [user_alert]
