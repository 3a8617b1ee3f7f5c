"""The OISP Sensor API as documented, on a real server and a real database."""

from __future__ import annotations

import json

from agentwatch.store import counters
from tests.conftest import OISP_EXAMPLES


def ev(event_type: str, ts: str, pid: int, name: str, ppid: int | None = None, data: dict | None = None, **kw):
    proc = {"pid": pid, "name": name}
    if ppid is not None:
        proc["ppid"] = ppid
    return {"event_type": event_type, "ts": ts, "process": proc, "host": {"hostname": "h1"}, "data": data or {}, **kw}


def exec_ev(ts, pid, name, ppid=None):
    return ev("process.exec", ts, pid, name, ppid, {"exe": f"/usr/bin/{name}"})


def llm_pair(ts_req, ts_resp, pid, rid, model="gpt-4o", provider="openai", prompt=10, completion=5):
    req = ev(
        "ai.request",
        ts_req,
        pid,
        "python3",
        data={"request_id": rid, "provider": {"name": provider}, "model": {"id": model}},
    )
    resp = ev(
        "ai.response",
        ts_resp,
        pid,
        "python3",
        data={
            "request_id": rid,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        },
    )
    return [req, resp]


def test_health_is_public_and_documented(server):
    with server.client() as c:
        doc = c.get("/api/health").json()
    assert doc["status"] == "healthy"
    assert doc["version"] == server.aw.version
    assert isinstance(doc["uptime_seconds"], int)
    assert doc["capture"]["running"] is True
    assert doc["exports"]["websocket"] == {"status": "ok", "clients": 0}


def test_stats_count_types_tokens_providers_models(server):
    events = [exec_ev("2026-01-01T00:00:00Z", 10, "bash")]
    events += llm_pair("2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z", 11, "r1")
    events += llm_pair("2026-01-01T00:00:03Z", "2026-01-01T00:00:04Z", 11, "r2", "claude-3", "anthropic", 100, 50)
    with server.client() as c:
        assert c.post("/api/v1/ingest", json=events).json()["stored"] == 5
        s = c.get("/api/stats").json()
    by_type = {"ai.request": 2, "ai.response": 2, "process.exec": 1}
    assert s["events"] == {"total": 5, "by_type": by_type, "by_type_other": 0}
    assert s["ai"]["requests"] == 2 and s["ai"]["responses"] == 2
    assert s["ai"]["tokens"] == {"prompt": 110, "completion": 55, "total": 165}
    assert s["ai"]["providers"] == {"openai": 1, "anthropic": 1}
    assert s["ai"]["models"] == {"gpt-4o": 1, "claude-3": 1}
    assert s["ai"]["providers_other"] == 0 and s["ai"]["models_other"] == 0
    assert s["capture"]["running"] is True and s["capture"]["events_per_second"] > 0


def test_stats_list_the_top_n_models_and_sum_the_rest(server):
    """Model ids are whatever clients send: the answer lists the TOP_N largest with their
    counts, and what the others add up to as one figure; the other totals stay whole."""
    n, extra = counters.TOP_N, 30
    calls = {f"big-{i:03d}": 2 for i in range(n)} | {f"small-{i:03d}": 1 for i in range(extra)}
    data = [{"provider": {"name": "openai"}, "model": {"id": m}} for m, times in calls.items() for _ in range(times)]
    events = [ev("ai.request", "2026-01-01T00:00:00Z", 7, "python3", data=d) for d in data]
    with server.client() as c:
        for i in range(0, len(events), 100):
            chunk = events[i : i + 100]
            assert c.post("/api/v1/ingest", json=chunk).json()["stored"] == len(chunk)
        s = c.get("/api/stats").json()
        v1 = c.get("/api/v1/stats").json()
    assert s["ai"]["models"] == {f"big-{i:03d}": 2 for i in range(n)}
    assert s["ai"]["models_other"] == extra
    assert s["ai"]["providers"] == {"openai": 2 * n + extra} and s["ai"]["providers_other"] == 0
    assert s["ai"]["requests"] == 2 * n + extra
    assert s["events"] == {"total": 2 * n + extra, "by_type": {"ai.request": 2 * n + extra}, "by_type_other": 0}
    assert v1["events"] == {"by_type": {"ai.request": 2 * n + extra}, "by_type_other": 0}


def test_events_filters_and_pagination(server):
    events = [exec_ev(f"2026-01-01T00:00:0{i}Z", 100 + i, "python3" if i % 2 else "node") for i in range(6)]
    with server.client() as c:
        c.post("/api/v1/ingest", json=events)
        page = c.get("/api/events", params={"limit": 2, "offset": 1}).json()
        assert page["total"] == 6 and page["limit"] == 2 and page["offset"] == 1
        assert [e["ts"] for e in page["events"]] == ["2026-01-01T00:00:04Z", "2026-01-01T00:00:03Z"]
        py = c.get("/api/events", params={"process": "python3"}).json()
        assert py["total"] == 3 and {e["process"]["name"] for e in py["events"]} == {"python3"}
        since = c.get("/api/events", params={"since": "2026-01-01T00:00:04Z"}).json()
        assert since["total"] == 2
        typed = c.get("/api/events", params={"type": "ai.request"}).json()
        assert typed["total"] == 0
        fam = c.get("/api/events", params={"type": "process.*"}).json()
        assert fam["total"] == 6


def test_events_filter_by_session(server):
    events = [exec_ev(f"2026-01-01T00:00:0{i}Z", 200 + i, "node") for i in range(4)]
    for i, e in enumerate(events):
        e["session_id"] = "sess-a" if i < 3 else "sess-b"
    with server.client() as c:
        c.post("/api/v1/ingest", json=events)
        a = c.get("/api/events", params={"session_id": "sess-a"}).json()
        assert a["total"] == 3 and {e["session_id"] for e in a["events"]} == {"sess-a"}
        assert c.get("/api/events", params={"session_id": "sess-none"}).json()["total"] == 0


def test_events_bad_parameters_name_the_field(server):
    with server.client() as c:
        cases = [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"offset": -1}, "offset"),
            ({"since": "last tuesday"}, "since"),
            ({"type": "Not A Type!"}, "type"),
            ({"session_id": "s" * 257}, "session_id"),
            ({"sesion_id": "misspelt"}, "sesion_id"),
        ]
        for params, field in cases:
            r = c.get("/api/events", params=params)
            assert r.status_code == 400, (params, r.text)
            err = r.json()["error"]
            assert err["code"] == "INVALID_REQUEST"
            assert err["message"].startswith(f"{field}:"), err
        r = c.get("/api/traces", params={"offset": 2**63})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("offset:")
        r = c.get("/api/traces", params={"lmit": 5})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("lmit: unknown query parameter")


def test_an_event_id_holding_a_slash_is_reachable(server):
    event = exec_ev("2026-01-01T00:00:01Z", 300, "node")
    event["event_id"] = "host-a/ev 1"
    with server.client() as c:
        assert c.post("/api/v1/ingest", json=event).json()["stored"] == 1
        r = c.get("/api/events/host-a%2Fev%201")
        assert r.status_code == 200 and r.json()["event_id"] == "host-a/ev 1"


def test_unknown_event_and_route_use_the_error_envelope(server):
    with server.client() as c:
        r = c.get("/api/events/01NOPE")
        assert r.status_code == 404
        assert r.json() == {
            "error": {"code": "NOT_FOUND", "message": "Event not found", "details": {"event_id": "01NOPE"}}
        }
        r = c.get("/api/nothing-here")
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
        r = c.get("/api/events/" + "x" * 129)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("event_id:")


def test_processes_and_tree_from_lineage(server):
    events = [
        exec_ev("2026-01-01T00:00:00Z", 1000, "bash"),
        exec_ev("2026-01-01T00:00:01Z", 1001, "python3", ppid=1000),
        exec_ev("2026-01-01T00:00:02Z", 1002, "node", ppid=1001),
        exec_ev("2026-01-01T00:00:03Z", 2000, "sshd"),
        ev("process.exit", "2026-01-01T00:00:09Z", 1002, "node", 1001, {"exit_code": 0}),
    ]
    with server.client() as c:
        c.post("/api/v1/ingest", json=events)
        procs = {p["pid"]: p for p in c.get("/api/processes").json()["processes"]}
        tree = c.get("/api/process-tree").json()["tree"]
    assert set(procs) == {1000, 1001, 1002, 2000}
    assert procs[1002]["event_count"] == 2 and procs[1002]["exited_at"] == "2026-01-01T00:00:09Z"
    assert procs[1001]["ppid"] == 1000 and procs[1001]["exe"] == "/usr/bin/python3"
    assert procs[1000]["start_time"] == "2026-01-01T00:00:00Z"
    roots = {n["pid"]: n for n in tree}
    assert set(roots) == {1000, 2000}
    bash = roots[1000]
    assert [c["pid"] for c in bash["children"]] == [1001]
    assert [c["pid"] for c in bash["children"][0]["children"]] == [1002]


def test_runtime_filters_persist_and_drop_other_processes(server):
    with server.client() as c:
        assert c.get("/api/filters").json() == {"process_filter": [], "pid_filter": [], "filter_enabled": False}
        assert c.post("/api/filters/process", json={"name": "my-agent"}).status_code == 200
        doc = c.post("/api/filters/pid", json={"pid": 4242}).json()
        assert doc == {"process_filter": ["my-agent"], "pid_filter": [4242], "filter_enabled": True}
        r = c.post(
            "/api/v1/ingest",
            json=[
                exec_ev("2026-01-01T00:00:00Z", 1, "my-agent"),
                exec_ev("2026-01-01T00:00:01Z", 4242, "other"),
                exec_ev("2026-01-01T00:00:02Z", 7, "noise"),
            ],
        ).json()
        assert r["stored"] == 2 and r["filtered"] == 1
        # filters survive in the store: a new RuntimeFilters reads them back
        from agentwatch.pipeline.filters import RuntimeFilters

        assert RuntimeFilters(server.aw.engine).as_dict()["pid_filter"] == [4242]
        assert c.delete("/api/filters").json()["filter_enabled"] is False


def test_filter_bad_input(server):
    with server.client() as c:
        cases = [
            ("/api/filters/process", {"name": ""}, "name"),
            ("/api/filters/process", {"name": "x" * 300}, "name"),
            ("/api/filters/process", {"nme": "typo"}, "name"),
            ("/api/filters/pid", {"pid": "abc"}, "pid"),
            ("/api/filters/pid", {"pid": -5}, "pid"),
            ("/api/filters/pid", {"pid": 1, "extra": True}, "extra"),
        ]
        for path, body, field in cases:
            r = c.post(path, json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["message"].startswith(field), r.json()
        r = c.post("/api/filters/pid", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400


def test_traces_from_process_lineage_request_ids_and_tool_calls(server):
    events = [exec_ev("2026-01-01T00:00:00Z", 500, "bash"), exec_ev("2026-01-01T00:00:01Z", 501, "python3", ppid=500)]
    events += llm_pair("2026-01-01T00:00:02Z", "2026-01-01T00:00:03.5Z", 501, "req-1")
    events.append(
        ev("agent.tool_call", "2026-01-01T00:00:04Z", 501, "python3", data={"call_id": "c1", "tool": {"name": "shell"}})
    )
    events.append(
        ev("agent.tool_result", "2026-01-01T00:00:05Z", 501, "python3", data={"call_id": "c1", "success": True})
    )
    # the same pid long after the idle timeout starts a new trace
    events.append(exec_ev("2026-01-01T01:00:00Z", 501, "python3", ppid=1))
    with server.client() as c:
        c.post("/api/v1/ingest", json=events)
        listed = c.get("/api/traces").json()["traces"]
        assert len(listed) == 2
        first = min(listed, key=lambda t: t["start_time"])
        assert first["start_time"] == "2026-01-01T00:00:00Z"
        assert first["duration_ms"] == 5000.0
        assert first["span_count"] == 4 and first["status"] == "complete"
        detail = c.get(f"/api/traces/{first['trace_id']}").json()
        kinds = {(s["kind"], s["name"]): s for s in detail["spans"]}
        llm = kinds[("llm_call", "gpt-4o")]
        assert llm["duration_ms"] == 1500.0 and llm["status"] == "complete"
        assert kinds[("tool_call", "shell")]["duration_ms"] == 1000.0
        assert ("process", "bash") in kinds and ("process", "python3") in kinds
        assert detail["event_count"] == 6
        assert c.get("/api/traces/unknown").status_code == 404


def test_trace_context_is_respected(server):
    doc = json.loads((OISP_EXAMPLES / "process-exec.json").read_text())
    doc["trace_context"] = {"trace_id": "a" * 32, "span_id": "b" * 16}
    with server.client() as c:
        c.post("/api/v1/ingest", json=doc)
        assert c.get(f"/api/traces/{'a' * 32}").json()["event_count"] == 1


def test_metrics_exposes_pipeline_counters(server):
    with server.client() as c:
        c.post("/api/v1/ingest", json=[exec_ev("2026-01-01T00:00:00Z", 1, "a"), {"event_type": "bogus"}])
        text = c.get("/metrics").text
    assert "agentwatch_events_committed_total 1.0" in text
    assert 'agentwatch_events_rejected_total{source="oisp"} 1.0' in text
    assert "agentwatch_pipeline_queue_depth" in text
    assert "agentwatch_pipeline_batch_seconds_bucket" in text
