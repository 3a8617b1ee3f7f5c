"""``/api/v1/entity-risk``: entities by time-decayed risk score, on a real server and store
(SQLite and PostgreSQL). Alerts are stored with chosen severities and event times through the
recorder; the hosts are named by ingested events, so the entity index knows their values."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.detect.settings import DetectionSettings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event, iso
from agentwatch.pipeline.pipeline import Finding
from tests.soc.helpers import auth_server
from tests.support.server import RunningServer, run_server

HL = 3600.0  # the half-life these tests run with
T = 1_800_000_000.0  # event time of the newest alert
_serial = itertools.count()


@pytest.fixture
def srv(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    cfg = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False})
    cfg = cfg.model_copy(update={"detection": DetectionSettings(atr_bundled=False, risk_half_life_s=HL)})
    with run_server(cfg) as s:
        yield s


def alert_on(srv: RunningServer, host: str, severity: int, ts: float) -> str:
    n = next(_serial)
    ent = {"type": "host", "value": host, "id": entity_id("host", host)}
    event = Event(body={}, event_id=f"risk-e{n}", event_type="ai.request", ts=ts, received_at=ts, entities=[ent])
    finding = Finding("t", f"rule-{n}", f"Alert {n}", severity, [event], alert_type="atr", dedup_key=f"risk-{n}")
    ((alert, _),) = store_findings(srv.aw.engine, [finding], 300)
    return alert["id"]


def name(c: Any, *hosts: str) -> None:
    """Ingest an event naming each host, so the entity index holds its value."""
    events = [{"event_type": "process.exec", "host": {"hostname": h}, "data": {"exe": "/bin/true"}} for h in hosts]
    r = c.post("/api/v1/ingest", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def test_scores_decay_with_the_half_life_in_event_time(srv: RunningServer) -> None:
    a, b = f"risk-a-{uuid.uuid4().hex[:6]}", f"risk-b-{uuid.uuid4().hex[:6]}"
    alert_on(srv, a, 8, T)
    alert_on(srv, a, 4, T - HL)  # half its severity at T
    alert_on(srv, b, 6, T - 2 * HL)  # a quarter
    with srv.client() as c:
        name(c, a, b)
        doc = c.get("/api/v1/entity-risk").json()
        assert doc["meta"]["at"] == iso(T) and doc["meta"]["half_life_s"] == HL  # the newest alert's time
        ranked = [(e["value"], e["score"], e["alerts"]) for e in doc["entities"]]
        assert ranked == [(a, 10.0, 2), (b, 1.5, 1)]
        # one half-life later every score halves; alerts after `at` do not count yet
        later = c.get("/api/v1/entity-risk", params={"at": iso(T + HL)}).json()["entities"]
        assert [(e["value"], e["score"]) for e in later] == [(a, 5.0), (b, 0.75)]
        before = c.get("/api/v1/entity-risk", params={"at": iso(T - HL / 2)}).json()["entities"]
        assert [e["value"] for e in before] == [a, b] and before[0]["alerts"] == 1
        assert round(before[0]["score"], 4) == round(4 * 0.5**0.5, 4)
        assert c.get("/api/v1/entity-risk", params={"limit": 1}).json()["entities"][0]["value"] == a


def test_one_entity_by_value_or_id_with_the_alerts_weighing_most(srv: RunningServer) -> None:
    host = f"risk-c-{uuid.uuid4().hex[:6]}"
    heavy = alert_on(srv, host, 9, T)
    light = alert_on(srv, host, 2, T - 3 * HL)
    with srv.client() as c:
        name(c, host, f"{host}-quiet")
        by_value = c.get(f"/api/v1/entity-risk/{host}").json()["entity"]
        assert by_value["entity_id"] == entity_id("host", host) and by_value["type"] == "host"
        assert by_value["score"] == 9.25
        assert [(x["alert_id"], x["points"]) for x in by_value["contributors"]] == [(heavy, 9.0), (light, 0.25)]
        by_id = c.get(f"/api/v1/entity-risk/{entity_id('host', host)}").json()["entity"]
        assert by_id == by_value
        # named by an event, never by an alert: it scores 0
        quiet = c.get(f"/api/v1/entity-risk/{host}-quiet").json()["entity"]
        assert (quiet["score"], quiet["alerts"], quiet["contributors"]) == (0.0, 0, [])
        missing = c.get("/api/v1/entity-risk/no-such-host-anywhere")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/entity-risk", {"limit": 0}, "limit"),
        ("/api/v1/entity-risk", {"limit": 1001}, "limit"),
        ("/api/v1/entity-risk", {"at": "yesterday"}, "at"),
        ("/api/v1/entity-risk", {"colour": "red"}, "colour"),
        ("/api/v1/entity-risk/host-x", {"limit": 5}, "limit"),
        ("/api/v1/entity-risk/bad%01host", {}, "entity"),
        ("/api/v1/entity-risk/" + "h" * 513, {}, "entity"),
    ],
)
def test_bad_parameters_are_400_naming_them(srv: RunningServer, path: str, params: dict[str, Any], field: str) -> None:
    with srv.client() as c:
        r = c.get(path, params=params)
        assert r.status_code == 400, r.text
        assert field in r.json()["error"]["message"]


def test_an_empty_store_has_no_risky_entity(srv: RunningServer) -> None:
    with srv.client() as c:
        doc = c.get("/api/v1/entity-risk").json()
        assert doc["entities"] == [] and doc["meta"]["at"] is None


def test_scores_need_alerts_read(tmp_path: Path, database_url: str) -> None:
    with auth_server(database_url, tmp_path) as a:
        _, events_only = a.key("events:read")
        _, alerts_reader = a.key("alerts:read")
        assert a.client.get("/api/v1/entity-risk", headers=events_only).status_code == 403
        assert a.client.get("/api/v1/entity-risk/h", headers=events_only).status_code == 403
        assert a.client.get("/api/v1/entity-risk", headers=alerts_reader).status_code == 200
