"""WebSocket /ws/events (subscribe filters) and /ws/stats against a real server."""

from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

VALID_DATA = {
    "process.exec": {"exe": "/bin/x"},
    "process.exit": {"exit_code": 0},
    "file.open": {"path": "/tmp/x", "flags": ["read"]},
    "network.dns": {"query_name": "example.test", "query_type": "A"},
}


def proc_event(event_type: str, pid: int) -> dict:
    return {"event_type": event_type, "process": {"pid": pid, "name": "x"}, "data": VALID_DATA[event_type]}


def recv_json(ws, timeout=5.0):
    return json.loads(ws.recv(timeout=timeout))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ws_events_streams_and_filters_by_type(server):
    with connect(server.ws_url + "/ws/events") as ws, server.client() as c:
        ws.send(json.dumps({"type": "subscribe", "filter": {"event_types": ["ai.request", "process.*"]}}))
        assert recv_json(ws) == {"type": "subscribed", "filter": {"event_types": ["ai.request", "process.*"]}}
        r = c.post("/api/v1/ingest", json=[proc_event("file.open", 1), proc_event("process.exec", 2)])
        assert r.json()["stored"] == 2
        msg = recv_json(ws)
        assert msg["type"] == "event"
        assert msg["data"]["event_type"] == "process.exec" and msg["data"]["process"]["pid"] == 2
        c.post("/api/v1/ingest", json=[proc_event("network.dns", 3)])
        c.post("/api/v1/ingest", json=[proc_event("process.exit", 4)])
        assert recv_json(ws)["data"]["event_type"] == "process.exit"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ws_events_rejects_bad_subscribe_frames_without_dropping_the_client(server):
    with connect(server.ws_url + "/ws/events") as ws, server.client() as c:
        for frame, field in [
            ("{nope", "frame"),
            (json.dumps({"type": "unsubscribe"}), "type"),
            (json.dumps({"type": "subscribe", "filter": {"colour": "red"}}), "filter.colour"),
            (json.dumps({"type": "subscribe", "filters": {}}), "filters: unknown field"),
            (json.dumps({"type": "subscribe", "filter": {"event_types": "ai.request"}}), "filter.event_types"),
        ]:
            ws.send(frame)
            err = recv_json(ws)
            assert err["type"] == "error" and err["error"]["message"].startswith(field), err
        c.post("/api/v1/ingest", json=[proc_event("file.open", 1)])
        assert recv_json(ws)["data"]["event_type"] == "file.open"  # unfiltered still


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ws_stats_sends_periodic_frames(server):
    server.aw.settings.live.stats_interval_ms = 100
    with connect(server.ws_url + "/ws/stats") as ws:
        first, second = recv_json(ws), recv_json(ws)
    for frame in (first, second):
        assert frame["type"] == "stats" and frame["interval_ms"] == 100
        assert set(frame["data"]) == {"events_per_second", "active_processes", "pending_requests"}


def test_ws_stats_counts_the_requests_still_waiting_for_a_response(server):
    """pending_requests is read from the two totals by key, on both stores."""
    server.aw.settings.live.stats_interval_ms = 50
    ai = {"provider": {"name": "openai"}, "model": {"id": "gpt-4o"}}
    calls = [{"event_type": "ai.request", "data": {"request_id": f"r{i}", **ai}} for i in range(3)]
    calls.append({"event_type": "ai.response", "data": {"request_id": "r0"}})
    with server.client() as c:
        assert c.post("/api/v1/ingest", json=calls).json()["stored"] == 4
    seen = []
    with connect(server.ws_url + "/ws/stats") as ws:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and 2 not in seen:
            seen.append(recv_json(ws)["data"]["pending_requests"])
    assert seen[-1] == 2, seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ws_foreign_origin_is_refused(server):
    with pytest.raises(InvalidStatus) as info, connect(server.ws_url + "/ws/events", origin="https://evil.example"):
        pass
    assert info.value.response.status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_slow_ws_client_is_bounded_and_drops_counted(server):
    server.aw.hub.client_buffer = 5
    with connect(server.ws_url + "/ws/events") as ws, server.client() as c:
        ws.send(json.dumps({"type": "subscribe", "filter": {}}))
        recv_json(ws)
        sub = next(iter(server.aw.hub._subs))
        # publish faster than anyone reads: the hub keeps at most 5 frames for this client
        for i in range(50):
            server.aw.hub.publish("event", type("E", (), {"event_type": "x", "body": {"i": i}})())
        assert len(sub.buffer) <= 5
        assert sub.dropped + sub.delivered + len(sub.buffer) >= 50 - 1
        assert "agentwatch_live_dropped_total" in c.get("/metrics").text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/ws/events", "/ws/stats"])
def test_binary_frames_close_with_unsupported_data(server, path):
    with connect(server.ws_url + path) as ws, pytest.raises(ConnectionClosed) as info:
        ws.send(b"\x00")
        while True:
            ws.recv(timeout=5)
    assert info.value.rcvd.code == 1003


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_past_the_client_limit_the_socket_closes_with_try_again_later(server):
    server.aw.settings.live.max_clients = 1
    with (
        connect(server.ws_url + "/ws/events"),
        connect(server.ws_url + "/ws/events") as second,
        pytest.raises(ConnectionClosed) as info,
    ):
        second.recv(timeout=5)
    assert info.value.rcvd.code == 1013


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_client_limit_counts_event_sockets_not_other_streams(server):
    """Clients of the AOP stream and the scan stream have their own limits; they do not take
    the places of /ws/events clients."""
    server.aw.settings.live.max_clients = 1
    with server.client() as c, c.stream("GET", "/stream") as aop:
        assert next(aop.iter_lines()) == "retry: 2000"
        with connect(server.ws_url + "/ws/events") as ws:
            ws.send(json.dumps({"type": "subscribe", "filter": {"event_types": ["process.exec"]}}))
            assert recv_json(ws)["type"] == "subscribed"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /ws/events HTTP/1.1\r\nContent-Length: 2\r\n",  # an upgrade with a body
        b"GET /ws/events HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n",  # a header line too long
    ],
    ids=["post-with-body", "header-too-long"],
)
def test_an_unparsable_upgrade_request_is_answered_and_closed(server, request_head):
    host, port = server.url.removeprefix("http://").split(":")
    upgrade = b"Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    upgrade += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n{}"
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request_head + upgrade)
        answer = b""
        while chunk := s.recv(4096):  # returns b"" once the server closes; a hang times out
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in (b"400", b"431")
