"""AiSOC /api/v1/rules: a second face of the one rule store and engine that /api/v1/sigma/rules
shows (create, replace, delete, enable/disable, filters, cursor pages), and rule changes
reaching a second node that shares the store."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.detect.helpers import wait_for, with_detection
from tests.support.server import run_server


def rule_yaml(rule_id: str, tool: str, title: str = "AiSOC face rule", level: str = "high", tags: str = "") -> str:
    return f"""\
title: {title}
id: {rule_id}
status: experimental
level: {level}
description: fires on the tool {tool}
tags: [{tags or "attack.execution, attack.t1059"}]
logsource: {{product: agentwatch, category: tool_call}}
detection:
  sel:
    tool_name: {tool}
  condition: sel
"""


def tool_event(tool: str, host: str = "h1") -> dict[str, Any]:
    return {
        "event_type": "agent.tool_call",
        "event_id": f"ev-{uuid.uuid4().hex}",
        "host": {"hostname": host},
        "data": {"tool": {"name": tool, "type": "shell"}, "arguments": {"x": 1}},
    }


def new_id() -> str:
    return str(uuid.uuid4())


def detections_of(c: Any, rule_id: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/detections", params={"rule_id": rule_id})
    assert r.status_code == 200, r.text
    return r.json()["detections"]


def test_a_rule_made_on_one_face_is_the_rule_of_the_other(srv):
    a, b = new_id(), new_id()
    with srv.client() as c:
        text = rule_yaml(a, "aisoc_face_a")
        made = c.post("/api/v1/rules", json={"yaml": text})
        assert made.status_code == 201, made.text
        doc = made.json()["rules"][0]
        assert (doc["id"], doc["origin"], doc["editable"], doc["enabled"]) == (a, "user", True, True)
        assert doc["mitre"] == {"tactics": ["execution"], "techniques": ["T1059"]} and doc["severity"] == 7
        seen = c.get(f"/api/v1/sigma/rules/{a}").json()
        assert seen["uploaded"] is True and seen["yaml"] == text and seen["title"] == "AiSOC face rule"

        assert c.post("/api/v1/sigma/rules", json={"yaml": rule_yaml(b, "aisoc_face_b")}).status_code == 201
        other = c.get(f"/api/v1/rules/{b}").json()
        assert other["origin"] == "user" and "aisoc_face_b" in other["yaml"]

        users = c.get("/api/v1/rules", params={"source": "user", "limit": 1000}).json()["rules"]
        assert {a, b} <= {r["id"] for r in users}
        assert all(r["origin"] == "user" for r in users)

        # a create that clashes with either face's rule, or with a bundled one, is refused
        again = c.post("/api/v1/rules", json={"yaml": rule_yaml(b, "x")})
        assert again.status_code == 409 and b in again.json()["error"]["message"]


def test_detection_then_disable_on_either_face_stops_it(srv):
    watched, control = new_id(), new_id()
    with srv.client() as c:
        for rid, tool in ((watched, "aisoc_watched"), (control, "aisoc_control")):
            assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, tool)}).status_code == 201
        ev = tool_event("aisoc_watched")
        assert c.post("/api/v1/ingest", json=ev).json()["stored"] == 1
        hit = wait_for(lambda: detections_of(c, watched))
        assert len(hit) == 1 and hit[0]["source"] == "sigma" and hit[0]["rule_title"] == "AiSOC face rule"
        assert hit[0]["event_ids"] == [ev["event_id"]] and hit[0]["severity"] == 7
        assert {"type": "host", "value": "h1"}.items() <= hit[0]["entities"][0].items()

        off = c.post(f"/api/v1/rules/{watched}/disable")
        assert off.status_code == 200 and off.json()["enabled"] is False
        assert c.get(f"/api/v1/sigma/rules/{watched}").json()["enabled"] is False
        # the disabled rule stays quiet while the control rule in the same batch fires
        c.post("/api/v1/ingest", json=[tool_event("aisoc_watched", "h9"), tool_event("aisoc_control", "h9")])
        wait_for(lambda: detections_of(c, control))
        assert len(detections_of(c, watched)) == 1

        # enabled again through the Sigma face: the AiSOC face and the engine see it
        assert c.patch(f"/api/v1/sigma/rules/{watched}", json={"enabled": True}).status_code == 200
        assert c.get(f"/api/v1/rules/{watched}").json()["enabled"] is True
        c.post("/api/v1/ingest", json=tool_event("aisoc_watched", "h7"))
        wait_for(lambda: len(detections_of(c, watched)) == 2)


def test_replace_keeps_the_rule_on_both_faces_and_the_engine_follows(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "aisoc_old_tool")}).status_code == 201
        assert c.post(f"/api/v1/rules/{rid}/disable").status_code == 200
        dry = c.put(f"/api/v1/rules/{rid}", json={"yaml": rule_yaml(rid, "aisoc_new_tool", "Renamed"), "dry_run": True})
        assert dry.status_code == 200 and dry.json()["dry_run"] is True
        assert c.get(f"/api/v1/rules/{rid}").json()["title"] == "AiSOC face rule"  # nothing changed

        new_text = rule_yaml(rid, "aisoc_new_tool", "Renamed", level="critical")
        put = c.put(f"/api/v1/rules/{rid}", json={"yaml": new_text})
        assert put.status_code == 200, put.text
        assert put.json()["removed"] == [] and put.json()["rules"][0]["severity"] == 9
        sig = c.get(f"/api/v1/sigma/rules/{rid}").json()
        assert sig["yaml"] == new_text and sig["title"] == "Renamed" and sig["enabled"] is False  # flag kept

        assert c.post(f"/api/v1/rules/{rid}/enable").status_code == 200
        c.post("/api/v1/ingest", json=[tool_event("aisoc_old_tool", "h3"), tool_event("aisoc_new_tool", "h3")])
        hit = wait_for(lambda: detections_of(c, rid))
        assert len(hit) == 1 and hit[0]["rule_title"] == "Renamed" and hit[0]["severity"] == 9


def test_replace_and_delete_refuse_what_they_cannot_do(srv):
    rid, corr_base, corr = new_id(), new_id(), new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "aisoc_del")}).status_code == 201
        mismatch = c.put(f"/api/v1/rules/{rid}", json={"yaml": rule_yaml(new_id(), "t")})
        assert mismatch.status_code == 422 and f"must define the rule {rid}" in mismatch.json()["error"]["message"]
        bad = c.put(f"/api/v1/rules/{rid}", json={"yaml": "title: x\ndetection: [\n"})
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("yaml:")
        assert bad.json()["error"]["details"]["line"] >= 1

        bundled = c.put("/api/v1/rules/AW-TOOL-001", json={"yaml": rule_yaml(rid, "t")})
        assert bundled.status_code == 409 and "bundled rule pack" in bundled.json()["error"]["message"]
        gone = c.delete("/api/v1/rules/AW-BUILTIN-EXFIL")
        assert gone.status_code == 409 and "built-in detector" in gone.json()["error"]["message"]
        assert c.get("/api/v1/rules/AW-TOOL-001").status_code == 200  # still there
        assert c.put(f"/api/v1/rules/{new_id()}", json={"yaml": rule_yaml(rid, "t")}).status_code == 404
        assert c.delete(f"/api/v1/rules/{new_id()}").status_code == 404
        assert c.delete("/api/v1/rules/bad%20id").status_code == 400
        assert c.put(f"/api/v1/rules/{rid}", json={"yaml": ""}).status_code == 400
        assert c.put(f"/api/v1/rules/{rid}", json={"yaml": "x", "other": 1}).status_code == 400

        # two rules uploaded in one file: one cannot be deleted alone, the file can be replaced
        pair = rule_yaml(corr_base, "aisoc_pair_a") + "---\n" + rule_yaml(corr, "aisoc_pair_b", "Second")
        assert c.post("/api/v1/rules", json={"yaml": pair}).status_code == 201
        alone = c.delete(f"/api/v1/rules/{corr}")
        assert alone.status_code == 409 and corr_base in alone.json()["error"]["message"]
        shrunk = c.put(f"/api/v1/rules/{corr_base}", json={"yaml": rule_yaml(corr_base, "aisoc_pair_a")})
        assert shrunk.status_code == 200 and shrunk.json()["removed"] == [corr]
        assert c.get(f"/api/v1/sigma/rules/{corr}").status_code == 404

        assert c.delete(f"/api/v1/rules/{rid}").status_code == 204
        assert c.get(f"/api/v1/rules/{rid}").status_code == 404
        assert c.get(f"/api/v1/sigma/rules/{rid}").status_code == 404
        # the id is free again
        assert c.post("/api/v1/sigma/rules", json={"yaml": rule_yaml(rid, "aisoc_del")}).status_code == 201


def test_create_validates_like_the_sigma_upload(srv):
    rid = new_id()
    with srv.client() as c:
        dry = c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "t"), "dry_run": True})
        assert dry.status_code == 200 and dry.json()["rules"][0]["id"] == rid
        assert c.get(f"/api/v1/rules/{rid}").status_code == 404

        long_regex = rule_yaml(rid, "t").replace("tool_name: t", "tool_name|re: '" + "a" * 9000 + "'")
        unsafe = c.post("/api/v1/rules", json={"yaml": long_regex})
        assert unsafe.status_code == 422 and unsafe.json()["error"]["code"] == "INVALID_RULE"
        broken = c.post("/api/v1/rules", json={"yaml": "title: x\nlogsource: {product: a\n"})
        assert broken.status_code == 422 and broken.json()["error"]["details"]["line"] is not None
        assert c.post("/api/v1/rules", json={"yaml": "x" * (256 * 1024 + 1)}).status_code == 400
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "t"), "dry_run": "maybe"}).status_code == 400
        assert c.post("/api/v1/rules", json={"rule": "x"}).status_code == 400
        assert c.post("/api/v1/rules", content=b"not json").status_code == 400

        off = c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "t"), "enabled": False})
        assert off.status_code == 201 and off.json()["rules"][0]["enabled"] is False
        assert c.get(f"/api/v1/sigma/rules/{rid}").json()["enabled"] is False


def test_list_filters_and_cursor_pages(srv):
    rid = new_id()
    with srv.client() as c:
        text = rule_yaml(
            rid, "aisoc_filters", "Zebra finder", level="low", tags="attack.exfiltration, attack.t1048.003"
        )
        assert c.post("/api/v1/rules", json={"yaml": text}).status_code == 201
        pack = c.get("/api/v1/rules", params={"source": "pack", "limit": 1000}).json()
        assert pack["meta"]["total"] == 13 and pack["next_cursor"] is None
        ids, cursor = [], None
        for _ in range(10):
            params = {"source": "pack", "limit": 5, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/rules", params=params).json()
            ids += [r["id"] for r in page["rules"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert ids == sorted(r["id"] for r in pack["rules"]) and len(ids) == 13  # 5 + 5 + 3, no repeats

        def found(**params: Any) -> set[str]:
            r = c.get("/api/v1/rules", params={"limit": 1000, **params})
            assert r.status_code == 200, r.text
            return {x["id"] for x in r.json()["rules"]}

        assert rid in found(q="zebra") and rid in found(q="AISOC_FILTERS")  # title, description
        assert rid in found(tactic="Exfiltration") and rid not in found(tactic="execution")
        assert rid in found(technique="T1048") and rid in found(technique="t1048.003")
        assert rid not in found(technique="T1059")
        assert rid in found(level="low", source="sigma") and rid not in found(level="high")
        assert rid not in found(severity=4) and rid in found(severity=3, q="zebra")
        assert found(source="builtin") >= {"AW-BUILTIN-EXFIL", "AW-BUILTIN-TOOL-DRIFT"}
        assert rid not in found(source="bundled") and "AW-TOOL-001" in found(source="bundled")

        assert c.post("/api/v1/rules/AW-TOOL-002/disable").status_code == 200
        assert "AW-TOOL-002" in found(enabled="false", source="pack")
        assert c.get("/api/v1/sigma/rules/AW-TOOL-002").json()["enabled"] is False
        assert c.post("/api/v1/rules/AW-TOOL-002/enable").json()["enabled"] is True

        for bad in (
            {"limit": 0},
            {"limit": 1001},
            {"cursor": "nope"},
            {"source": "yara"},
            {"level": "HIGH"},
            {"severity": 11},
            {"tactic": "a;b"},
            {"page": 2},
        ):
            r = c.get("/api/v1/rules", params=bad)
            assert r.status_code == 400, (bad, r.text)
            assert next(iter(bad)) in r.json()["error"]["message"]
        assert c.post(f"/api/v1/rules/{new_id()}/enable").status_code == 404
        assert c.post("/api/v1/rules/bad%20id/disable").status_code == 400


def test_a_second_node_sharing_the_store_follows(settings):
    rid = new_id()
    cfg = with_detection(settings, pack=False)
    with run_server(cfg) as one, run_server(cfg) as two, one.client() as c1, two.client() as c2:
        assert c1.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "aisoc_node")}).status_code == 201
        assert c2.get(f"/api/v1/rules/{rid}").json()["origin"] == "user"  # the AiSOC face syncs first
        engine_two = two.aw.components["detection"].engine
        c2.post("/api/v1/ingest", json=tool_event("aisoc_node"))
        wait_for(lambda: detections_of(c2, rid))

        assert c1.post(f"/api/v1/rules/{rid}/disable").status_code == 200
        wait_for(lambda: rid in engine_two.disabled, timeout=10)  # node two's pipeline, no request
        assert (
            c1.put(f"/api/v1/rules/{rid}", json={"yaml": rule_yaml(rid, "aisoc_node", "Node title")}).status_code == 200
        )
        wait_for(lambda: engine_two.infos.get(rid) is not None and engine_two.infos[rid].title == "Node title", 10)
        assert rid in engine_two.disabled
        assert c1.delete(f"/api/v1/rules/{rid}").status_code == 204
        wait_for(lambda: rid not in engine_two.infos, timeout=10)
        started = time.monotonic()
        assert c2.get(f"/api/v1/rules/{rid}").status_code == 404
        assert time.monotonic() - started < 5
