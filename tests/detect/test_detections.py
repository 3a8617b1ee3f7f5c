"""AiSOC /api/v1/detections: the engine's rule hits and outside engines' reports (recorded as
deduplicated alerts), filters, cursor pages, window stats, bad input and permissions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from agentwatch.config import Settings
from tests.detect.helpers import wait_for, with_detection
from tests.detect.test_aisoc_rules import rule_yaml, tool_event
from tests.support.server import run_server

PASSWORD = "correct horse battery staple"


def report(rule_id: str = "EXT-1", **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"rule_id": rule_id, "rule_title": "Outside rule", "severity": 7, "event_ids": ["x-1"]}
    doc.update(kw)
    return doc


def ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


def test_outside_detections_become_deduplicated_alerts(srv):
    with srv.client() as c:
        ev = tool_event("ext_tool", host="ext-host")
        assert c.post("/api/v1/ingest", json=ev).json()["stored"] == 1
        body = report(
            "EXT-DEDUP",
            engine="splunk",
            event_ids=[ev["event_id"], "splunk-42"],
            entities=[{"type": "user", "value": "mallory"}],
            tags=["attack.execution", "attack.t1059"],
            severity="high",
        )
        first = c.post("/api/v1/detections", json=body)
        assert first.status_code == 201, first.text
        det = first.json()["detection"]
        assert (det["rule_id"], det["rule_title"], det["source"], det["engine"]) == (
            "EXT-DEDUP",
            "Outside rule",
            "external",
            "splunk",
        )
        assert det["severity"] == 7 and det["event_ids"] == [ev["event_id"], "splunk-42"] and det["count"] == 1
        kinds = {(e["type"], e["value"]) for e in det["entities"]}
        assert {("host", "ext-host"), ("user", "mallory")} <= kinds  # the stored event's and the reported

        again = c.post("/api/v1/detections", json={**body, "event_ids": [ev["event_id"], "splunk-43"]})
        assert again.status_code == 200 and again.json()["merged"] is True
        assert again.json()["detection"]["id"] == det["id"] and again.json()["detection"]["count"] == 2

        listed = c.get("/api/v1/detections", params={"rule_id": "EXT-DEDUP"}).json()
        assert listed["meta"]["total"] == 1 and listed["detections"][0]["count"] == 2
        alert = c.get(f"/api/v1/alerts/{det['id']}").json()
        assert alert["type"] == "external" and alert["rule_id"] == "EXT-DEDUP"


def test_an_embedded_event_is_stored_and_named(srv):
    with srv.client() as c:
        ev = tool_event("ext_embedded", host="emb-host")
        made = c.post("/api/v1/detections", json=report("EXT-EMB", event_ids=[], event=ev, time=ago(minutes=1)))
        assert made.status_code == 201, made.text
        det = made.json()["detection"]
        assert det["event_ids"] == [ev["event_id"]]
        assert c.get(f"/api/events/{ev['event_id']}").status_code == 200
        assert ("host", "emb-host") in {(e["type"], e["value"]) for e in det["entities"]}
        bad = c.post("/api/v1/detections", json=report("EXT-EMB", event={"event_type": "agent.tool_call", "data": 5}))
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("event.")


def test_engine_detections_are_listed_filtered_and_paged(srv):
    rid = str(uuid.uuid4())
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "det_paging")}).status_code == 201
        c.post("/api/v1/ingest", json=[tool_event("det_paging", host=f"p{i}") for i in range(3)])
        wait_for(lambda: c.get("/api/v1/detections", params={"rule_id": rid}).json()["meta"]["total"] == 3)
        seen, cursor = [], None
        for _ in range(5):
            params = {"rule_id": rid, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/detections", params=params).json()
            seen += [d["id"] for d in page["detections"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 3  # 2 + 1, no repeats
        sigma = c.get("/api/v1/detections", params={"source": "sigma", "rule_id": rid}).json()
        assert sigma["meta"]["total"] == 3 and all(d["source"] == "sigma" for d in sigma["detections"])
        assert c.get("/api/v1/detections", params={"source": "external", "rule_id": rid}).json()["meta"]["total"] == 0
        assert c.get("/api/v1/detections", params={"severity_min": 8, "rule_id": rid}).json()["meta"]["total"] == 0
        assert c.get("/api/v1/detections", params={"severity_min": 7, "rule_id": rid}).json()["meta"]["total"] == 3
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert c.get("/api/v1/detections", params={"since": future, "rule_id": rid}).json()["meta"]["total"] == 0
        assert c.get("/api/v1/detections", params={"until": ago(days=1), "rule_id": rid}).json()["meta"]["total"] == 0
        for bad in (
            {"limit": 0},
            {"limit": 1001},
            {"cursor": "abc"},
            {"source": "yara"},
            {"severity_min": 11},
            {"since": "yesterday"},
            {"rule_id": "a b"},
            {"page": 1},
        ):
            r = c.get("/api/v1/detections", params=bad)
            assert r.status_code == 400 and next(iter(bad)) in r.json()["error"]["message"], (bad, r.text)


def test_bad_reports_name_the_field(srv):
    cases = [
        ({"event_ids": []}, "event_ids"),
        ({"severity": 11}, "severity"),
        ({"severity": "urgent"}, "severity"),
        ({"severity": True}, "severity"),
        ({"time": "last tuesday"}, "time"),
        ({"time": "9999-01-01T00:00:00Z"}, "time"),
        ({"entities": [{"type": "planet", "value": "x"}]}, "entities"),
        ({"entities": [{"type": "user", "value": ""}]}, "entities"),
        ({"rule_id": "has space"}, "rule_id"),
        ({"rule_title": ""}, "rule_title"),
        ({"event_ids": [f"e{i}" for i in range(101)]}, "event_ids"),
        ({"tags": ["a b"]}, "tags"),
        ({"engine": "x" * 65}, "engine"),
        ({"message": "m" * 4001}, "message"),
        ({"colour": "red"}, "colour"),
    ]
    with srv.client() as c:
        for change, field in cases:
            r = c.post("/api/v1/detections", json=report(**change))
            assert r.status_code == 400, (change, r.text)
            assert r.json()["error"]["message"].startswith(field), (change, r.text)
        assert c.post("/api/v1/detections", content=b"[").status_code == 400
        assert c.post("/api/v1/detections", json={"rule_id": "x"}).status_code == 400


def test_stats_count_the_window_by_rule_severity_source_and_tactic(settings):
    rid = str(uuid.uuid4())
    with run_server(with_detection(settings, pack=False)) as srv, srv.client() as c:
        for r in c.get("/api/v1/rules", params={"source": "builtin"}).json()["rules"]:
            assert c.post(f"/api/v1/rules/{r['id']}/disable").status_code == 200
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "stats_tool")}).status_code == 201
        c.post("/api/v1/ingest", json=tool_event("stats_tool", host="s1"))
        wait_for(lambda: c.get("/api/v1/detections", params={"rule_id": rid}).json()["detections"])

        def post(rule: str, sev: int, host: str, tags: list[str], when: str) -> None:
            ents = [{"type": "host", "value": host}]
            r = c.post("/api/v1/detections", json=report(rule, severity=sev, entities=ents, tags=tags, time=when))
            assert r.status_code in (200, 201), r.text

        post("EXT-X", 7, "a", ["attack.execution", "attack.t1059"], ago(minutes=5))
        post("EXT-X", 7, "b", ["attack.execution"], ago(minutes=4))
        post("EXT-Y", 3, "a", ["attack.exfiltration"], ago(minutes=3))
        post("EXT-Y", 3, "a", ["attack.exfiltration"], ago(minutes=2))  # merges: one detection, two hits
        post("EXT-Z", 9, "a", [], ago(days=3))  # outside the default 24 h

        day = c.get("/api/v1/detections/stats").json()
        # sigma rule: 1 detection (high, execution); EXT-X: 2 (high, execution); EXT-Y: 1 (low, two hits)
        assert day["totals"] == {"detections": 4, "hits": 5, "rules": 3}
        assert [(r["rule_id"], r["detections"], r["hits"]) for r in day["by_rule"]] == [
            ("EXT-X", 2, 2),
            ("EXT-Y", 1, 2),
            (rid, 1, 1),
        ]
        assert day["by_severity"] == {"info": 0, "low": 1, "medium": 0, "high": 3, "critical": 0}
        assert day["by_source"]["external"] == 3 and day["by_source"]["sigma"] == 1 and day["by_source"]["atr"] == 0
        assert day["by_tactic"] == {"execution": 3, "exfiltration": 1}
        assert day["rows_read"] == 4 and day["truncated"] is False and day["window"]["seconds"] == 86400

        week = c.get("/api/v1/detections/stats", params={"hours": 96, "top": 1}).json()
        assert week["totals"]["detections"] == 5 and week["by_severity"]["critical"] == 1
        assert week["by_tactic"]["unmapped"] == 1 and [r["rule_id"] for r in week["by_rule"]] == ["EXT-X"]
        for bad in ({"hours": 0}, {"hours": 721}, {"top": 0}, {"top": 101}, {"window": "1d"}):
            r = c.get("/api/v1/detections/stats", params=bad)
            assert r.status_code == 400 and next(iter(bad)) in r.json()["error"]["message"], (bad, r.text)


def test_routes_need_their_permissions(tmp_path):
    cfg = Settings(
        data_dir=tmp_path,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as srv, srv.client() as c:
        srv.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}

        def key(*scopes: str) -> dict[str, str]:
            made = c.post("/api/v1/api-keys", headers=admin, json={"name": "k", "scopes": list(scopes)}).json()
            return {"X-API-Key": made["key"]}

        rid = str(uuid.uuid4())
        text = rule_yaml(rid, "perm_tool")
        for method, path, body in (
            ("GET", "/api/v1/rules", None),
            ("GET", "/api/v1/rules/AW-BUILTIN-EXFIL", None),
            ("POST", "/api/v1/rules", {"yaml": text}),
            ("PUT", f"/api/v1/rules/{rid}", {"yaml": text}),
            ("DELETE", f"/api/v1/rules/{rid}", None),
            ("POST", "/api/v1/rules/AW-BUILTIN-EXFIL/enable", None),
            ("POST", "/api/v1/rules/AW-BUILTIN-EXFIL/disable", None),
            ("GET", "/api/v1/detections", None),
            ("GET", "/api/v1/detections/stats", None),
            ("POST", "/api/v1/detections", report()),
        ):
            assert c.request(method, path, json=body).status_code == 401, (method, path)

        rules_read, alerts_read = key("rules:read"), key("alerts:read")
        assert c.get("/api/v1/rules", headers=rules_read).status_code == 200
        assert c.get("/api/v1/rules", headers=alerts_read).status_code == 403
        assert c.post("/api/v1/rules", headers=rules_read, json={"yaml": text}).status_code == 403
        assert c.post("/api/v1/rules/AW-BUILTIN-EXFIL/disable", headers=rules_read).status_code == 403
        writer = key("rules:read", "rules:write")
        assert c.post("/api/v1/rules", headers=writer, json={"yaml": text}).status_code == 201
        assert c.put(f"/api/v1/rules/{rid}", headers=writer, json={"yaml": text}).status_code == 200
        assert c.delete(f"/api/v1/rules/{rid}", headers=rules_read).status_code == 403
        assert c.delete(f"/api/v1/rules/{rid}", headers=writer).status_code == 204

        assert c.get("/api/v1/detections", headers=alerts_read).status_code == 200
        assert c.get("/api/v1/detections/stats", headers=alerts_read).status_code == 200
        assert c.get("/api/v1/detections", headers=rules_read).status_code == 403
        assert c.post("/api/v1/detections", headers=alerts_read, json=report()).status_code == 403
        alerts_write = key("alerts:write")
        assert c.post("/api/v1/detections", headers=alerts_write, json=report()).status_code == 201
        embedded = report(event_ids=[], event=tool_event("perm_embedded"))
        refused = c.post("/api/v1/detections", headers=alerts_write, json=embedded)
        assert refused.status_code == 403 and "events:write" in refused.json()["error"]["message"]
        both = key("alerts:write", "events:write")
        assert c.post("/api/v1/detections", headers=both, json=embedded).status_code == 201
