"""Sessions API: listing by activity with filters and paging, detail, export bytes, delete, health."""

from __future__ import annotations

import time
from urllib.parse import quote

import orjson
import pytest

from agentwatch import __version__
from tests.sessions.aop import ev


def post(c, events):
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def test_sessions_listed_by_latest_activity_with_filters_and_paging(server):
    with server.client() as c:
        # s-old starts first (event time) but is the most recently active (receive time)
        post(c, [ev("s-old", 1, "session.started", {"goal": "first"}, agent="alpha")])
        post(c, [ev("s-mid", 1, "session.started", agent="beta")])
        post(c, [ev("s-new", 1, "session.started", agent="alpha"), ev("s-new", 2, "session.ended")])
        post(c, [ev("s-old", 2, "cognition.thought", {"content": "still here"}, agent="alpha")])
        ids = [s["id"] for s in c.get("/sessions").json()["sessions"]]
        assert ids == ["s-old", "s-new", "s-mid"]
        assert [s["id"] for s in c.get("/sessions", params={"agent": "alpha"}).json()["sessions"]] == [
            "s-old",
            "s-new",
        ]
        assert [s["id"] for s in c.get("/sessions", params={"status": "completed"}).json()["sessions"]] == ["s-new"]
        page = c.get("/sessions", params={"limit": 2}).json()
        assert [s["id"] for s in page["sessions"]] == ["s-old", "s-new"]
        assert page["total"] == 3 and page["next_offset"] == 2
        last = c.get("/sessions", params={"limit": 2, "offset": 2}).json()
        assert [s["id"] for s in last["sessions"]] == ["s-mid"] and last["next_offset"] is None
        assert c.get("/sessions", params={"since": "2999-01-01T00:00:00Z"}).json()["sessions"] == []
        assert c.get("/sessions", params={"since": "2000-01-01T00:00:00Z"}).json()["total"] == 3
        for params, field in [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"offset": -1}, "offset"),
            ({"status": "sleeping"}, "status"),
            ({"since": "yesterday"}, "since"),
            ({"agent": "x" * 129}, "agent"),
        ]:
            r = c.get("/sessions", params=params)
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}: "), (params, r.text)


def test_session_detail_events_in_sequence_order_with_children(server):
    with server.client() as c:
        # sent out of order: detail returns them by sequence
        post(c, [ev("root", 3, "cognition.thought", {"content": "c"}), ev("root", 1, "session.started", {"goal": "g"})])
        post(c, [ev("root", 2, "operation.agent_spawn", {"child_session_id": "kid", "task": "t"})])
        post(c, [ev("kid", 1, "session.started", {"goal": "sub"}, parent="root", agent="helper")])
        doc = c.get("/sessions/root").json()
        assert set(doc) == {"session", "events", "alerts", "children", "next_after"}
        assert [e["sequence"] for e in doc["events"]] == [1, 2, 3] and doc["next_after"] is None
        assert [k["id"] for k in doc["children"]] == ["kid"] and doc["children"][0]["parent_session_id"] == "root"
        assert doc["session"]["children_count"] == 1 and doc["session"]["total_steps"] == 2
        assert c.get("/sessions/kid").json()["session"]["agent_id"] == "helper"
        r = c.get("/sessions/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
        assert c.get("/sessions/" + "x" * 129).status_code == 400


def test_export_returns_the_bytes_as_sent_with_a_safe_file_name(server):
    sid = 'weird "id"; é'
    lines = [
        b'{"spec":"aop/1.0","session_id":"weird \\"id\\"; \\u00e9","agent_id":"a","sequence":1,'
        b'"timestamp":"2026-04-03T10:00:00Z","type":"session.started","payload":{"goal":"x",  "n": 1.50}}',
        b'{"type":"cognition.thought","spec":"aop/1.0","session_id":"weird \\"id\\"; \\u00e9","agent_id":"a",'
        b'"sequence":2,"timestamp":"2026-04-03T10:00:01+02:00","payload":{"reasoning":"r"}}',
    ]
    with server.client() as c:
        r = c.post("/events", content=b"\n".join(lines), headers={"Content-Type": "application/x-ndjson"})
        assert r.json()["stored"] == 2, r.text
        r = c.get(f"/sessions/{quote(sid, safe='')}/export")
        assert r.status_code == 200
        assert r.content == b"\n".join(lines) + b"\n"
        assert r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["content-disposition"] == (
            "attachment; filename=\"session-weird__id____.jsonl\"; filename*=UTF-8''"
            + quote(f"session-{sid}.jsonl", safe="")
        )
        assert c.get("/sessions/unknown/export").status_code == 404


def test_a_long_session_pages_by_sequence(server):
    with server.client() as c:
        post(c, [ev("long", n, "cognition.thought", {"content": f"step {n}"}) for n in (1, 2, 3, 5, 8)])
        page = c.get("/sessions/long", params={"limit": 2}).json()
        assert [e["sequence"] for e in page["events"]] == [1, 2] and page["next_after"] == 2
        page = c.get("/sessions/long", params={"limit": 2, "after": 2}).json()
        assert [e["sequence"] for e in page["events"]] == [3, 5] and page["next_after"] == 5
        page = c.get("/sessions/long", params={"limit": 2, "after": 5}).json()
        assert [e["sequence"] for e in page["events"]] == [8] and page["next_after"] is None
        assert page["session"]["event_count"] == 5  # the session itself is whole on every page
        for params, message in [
            ({"limit": 0}, "limit: must be between 1 and 10000"),
            ({"limit": 10001}, "limit: must be between 1 and 10000"),
            ({"after": "two"}, "after: must be an integer"),
            ({"after": -2}, "after: must be between -1 and "),
            ({"offset": 3}, "offset: unknown query parameter"),
        ]:
            r = c.get("/sessions/long", params=params)
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(message), (params, r.text)


def test_a_long_export_streams_every_event_in_order(server):
    from agentwatch.api.aop import EXPORT_PAGE

    total = EXPORT_PAGE + 3  # more than one page of the export's reads
    with server.client() as c:
        for start in range(0, total, 1000):
            stop = min(total, start + 1000)
            events = [ev("huge", n, "cognition.thought", {"content": "x"}) for n in range(start, stop)]
            body = b"\n".join(orjson.dumps(e) for e in events)
            r = c.post("/events", content=body, headers={"Content-Type": "application/x-ndjson"})
            assert r.json()["stored"] == len(events), r.text
        r = c.get("/sessions/huge/export")
        assert r.status_code == 200
        lines = r.content.splitlines()
        assert [orjson.loads(line)["sequence"] for line in lines] == list(range(total))


@pytest.mark.parametrize("sid", ["team/run-7", "a/export", "x/y/z", "100%", "%2F"])
def test_ids_holding_a_slash_reach_detail_export_and_delete(server, sid):
    """A session id is one path segment, its "/" sent as %2F; the raw path decides which
    view is asked for, so the detail of "a/export" is not the export of "a"."""
    path = "/sessions/" + quote(sid, safe="")
    with server.client() as c:
        post(c, [ev(sid, 1, "session.started", {"goal": "g"}), ev(sid, 2, "cognition.thought", {"content": "c"})])
        doc = c.get(path).json()
        assert doc["session"]["id"] == sid and [e["sequence"] for e in doc["events"]] == [1, 2]
        lines = c.get(path + "/export").content.splitlines()
        assert [orjson.loads(line)["session_id"] for line in lines] == [sid, sid]
        r = c.delete(path)
        assert r.status_code == 200 and r.json()["deleted"]["session_ids"] == [sid]
        assert c.get(path).status_code == 404


def test_session_paths_that_name_no_view_are_not_found(server):
    with server.client() as c:
        post(c, [ev("a", 1, "session.started")])
        for path in ["/sessions/a/", "/sessions/a/export/", "/sessions/a/other", "/sessions/a/export/x"]:
            assert c.get(path).status_code == 404, path
        assert c.delete("/sessions/a/export").status_code == 404
        r = c.get("/sessions/%FF")
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("id: must be UTF-8")
        assert c.get("/sessions/a").status_code == 200  # none of that touched it


def test_delete_session_and_subtree(server):
    with server.client() as c:
        post(c, [ev("top", 1, "session.started"), ev("top", 2, "operation.tool_end", {"tool": "t", "success": False})])
        post(c, [ev("mid", 1, "session.started", parent="top"), ev("leaf", 1, "session.started", parent="mid")])
        post(c, [ev("keep", 1, "session.started")])
        assert c.delete("/sessions/ghost").status_code == 404
        r = c.delete("/sessions/leaf")
        assert r.status_code == 200 and r.json()["ok"] is True and r.json()["deleted"]["session_ids"] == ["leaf"]
        assert c.get("/sessions/leaf").status_code == 404
        r = c.delete("/sessions/top", params={"recursive": "true"})
        assert sorted(r.json()["deleted"]["session_ids"]) == ["mid", "top"]
        assert r.json()["deleted"]["events"] == 3
        assert [s["id"] for s in c.get("/sessions").json()["sessions"]] == ["keep"]
        assert c.get("/sessions/top/export").status_code == 404  # its events are gone too
        with server.aw.engine.connect() as conn:
            sql = "SELECT count(*) FROM events WHERE session_id IN ('top', 'mid', 'leaf')"
            assert conn.exec_driver_sql(sql).scalar_one() == 0
        # the session can start again from a clean slate (its steps are not duplicates any more)
        post(c, [ev("top", 1, "session.started", {"goal": "again"})])
        assert c.get("/sessions/top").json()["session"]["goal"] == "again"


def test_health_reports_version_and_stream_subscribers(server):
    with server.client() as c:
        doc = c.get("/health").json()
        assert doc == {"ok": True, "version": __version__, "subscribers": 0}
        with c.stream("GET", "/stream") as resp:
            lines = resp.iter_lines()
            assert next(lines) == "retry: 2000"
            assert c.get("/health").json()["subscribers"] == 1
        deadline = time.monotonic() + 5
        while c.get("/health").json()["subscribers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/health").json()["subscribers"] == 0


def test_auth_required_to_read_but_not_to_post_on_loopback(tmp_path):
    from agentwatch.config import Settings
    from tests.support.server import run_server

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'a.db'}")
    with run_server(settings) as srv, srv.client() as c:
        assert c.post("/events", json=ev("s", 1, "session.started")).status_code == 200
        assert c.get("/sessions").status_code == 401
        assert c.get("/stream").status_code == 401
        assert c.delete("/sessions/s").status_code == 401
        assert c.get("/health").status_code == 200
        body = orjson.loads(c.get("/health").content)
        assert body["ok"] is True


def test_optional_second_listener_serves_the_same_collector(tmp_path):
    import httpx

    from agentwatch.config import Settings
    from tests.support.server import free_port, run_server

    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        auth={"enabled": False},
        aop={"compat_listener": True, "compat_port": port},
    )
    with run_server(settings) as srv, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as compat:
        assert compat.get("/health").json()["ok"] is True
        assert compat.post("/events", json=ev("via-4317", 1, "session.started")).status_code == 200
        assert compat.get("/api/health").status_code == 404  # only the AOP routes live there
        with srv.client() as main:
            assert main.get("/sessions/via-4317").json()["session"]["id"] == "via-4317"
    with httpx.Client(timeout=2) as c:
        try:
            c.get(f"http://127.0.0.1:{port}/health")
            still_up = True
        except httpx.ConnectError:
            still_up = False
    assert not still_up  # stopped with the server
