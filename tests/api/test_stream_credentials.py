"""Live streams outlive their handshake: a credential that stops being valid (a key revoked,
a user disabled or demoted, a session ended) must stop the stream within a short bound,
not only refuse the next connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agentwatch.api.wsframes import POLICY_VIOLATION, RECHECK_S
from agentwatch.soc.auth.service import CACHE_TTL_S
from tests.auth.conftest import add_user, auth_settings, bearer, login
from tests.support.server import RunningServer, run_server

BOUND_S = RECHECK_S + CACHE_TTL_S + 5  # re-check period, principal cache, and slack for a slow CI


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RunningServer]:
    settings = auth_settings(tmp_path, f"sqlite:///{tmp_path / 'agentwatch.db'}")
    settings.live.stats_interval_ms = 200
    with run_server(settings) as running:
        yield running


def user_token(srv: RunningServer, c: httpx.Client, email: str, role: str) -> tuple[str, str]:
    user_id = add_user(srv, email, role)
    return user_id, login(c, email)["access_token"]


def ingest_one(c: httpx.Client, admin: dict[str, str], n: int) -> None:
    event = {"event_type": "process.exec", "process": {"pid": 1000 + n, "name": "x"}, "data": {"exe": "/bin/x"}}
    r = c.post("/api/v1/ingest", headers=admin, json=[event])
    assert r.status_code in (200, 202), r.text


def closed_for_policy(ws: Any, poke: Any = None) -> tuple[int, list[dict[str, Any]]]:
    """Read until the server closes the socket (poking the stream with new events meanwhile);
    the close code, and the frames that came. Fails when the socket is still open at BOUND_S."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + BOUND_S
    n, poked_at = 0, 0.0
    while time.monotonic() < deadline:
        if poke is not None and time.monotonic() - poked_at >= 0.5:  # within the rate limit
            poke(n)
            n, poked_at = n + 1, time.monotonic()
        try:
            seen.append(json.loads(ws.recv(timeout=0.5)))
        except TimeoutError:
            continue
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, seen
    pytest.fail(f"the stream was still open {BOUND_S:.0f}s after its credential stopped being valid")


def test_ws_events_closes_when_its_api_key_is_revoked(srv):
    with srv.client() as c:
        _, admin_token = user_token(srv, c, "root@example.com", "admin")
        admin = bearer(admin_token)
        owner = bearer(user_token(srv, c, "an@example.com", "analyst")[1])
        made = c.post("/api/v1/api-keys", headers=owner, json={"name": "dash", "scopes": ["events:read"]}).json()
        with connect(srv.ws_url + "/ws/events", additional_headers={"X-API-Key": made["key"]}) as ws:
            ingest_one(c, admin, 0)
            assert json.loads(ws.recv(timeout=5))["type"] == "event"  # the key works while it is valid
            assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=owner).json()["revoked"] is True
            code, _ = closed_for_policy(ws, lambda n: ingest_one(c, admin, n + 1))
        assert code == POLICY_VIOLATION


def test_ws_stats_closes_when_its_user_is_disabled(srv):
    with srv.client() as c:
        _, admin_token = user_token(srv, c, "root@example.com", "admin")
        user_id, token = user_token(srv, c, "vi@example.com", "viewer")
        with connect(srv.ws_url + "/ws/stats", additional_headers=bearer(token)) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "stats"
            r = c.put(f"/api/v1/users/{user_id}", headers=bearer(admin_token), json={"disabled": True})
            assert r.status_code == 200, r.text
            code, _ = closed_for_policy(ws)
        assert code == POLICY_VIOLATION


def test_v1_ws_closes_when_its_user_loses_events_read(srv):
    """A role change that takes the stream's permission away, for a cookie-authenticated socket."""
    with srv.client() as c:
        _, admin_token = user_token(srv, c, "root@example.com", "admin")
        admin = bearer(admin_token)
        user_id, token = user_token(srv, c, "an@example.com", "analyst")
        with connect(srv.ws_url + "/api/v1/ws", additional_headers={"Cookie": f"aw_access={token}"}) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "status"
            r = c.put(f"/api/v1/users/{user_id}", headers=admin, json={"role": "ingest"})
            assert r.status_code == 200, r.text
            code, _ = closed_for_policy(ws, lambda n: ingest_one(c, admin, n))
        assert code == POLICY_VIOLATION


def test_aop_stream_ends_when_its_api_key_is_revoked(srv):
    """SSE ``/stream``: the response ends (the client sees the stream close) once the key that
    opened it is revoked, while session events keep coming."""
    from tests.sessions.aop import ev

    with srv.client() as c:
        _, admin_token = user_token(srv, c, "root@example.com", "admin")
        admin = bearer(admin_token)
        owner = bearer(user_token(srv, c, "an@example.com", "analyst")[1])
        made = c.post("/api/v1/api-keys", headers=owner, json={"name": "sse", "scopes": ["sessions:read"]}).json()
        seq = iter(range(1, 10_000))
        with c.stream("GET", "/stream", headers={"X-API-Key": made["key"]}, timeout=BOUND_S + 10) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert "connected" in next(line for line in lines if line.startswith("data:"))
            assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=owner).json()["revoked"] is True
            started, ended = time.monotonic(), False
            for line in lines:
                if time.monotonic() - started > BOUND_S:
                    break
                if line.startswith(("data:", ":")):  # an event or a ping: keep it busy
                    c.post("/events", headers=admin, json=[ev("s-sse", next(seq), "cognition.thought")])
            else:
                ended = True
        assert ended, f"/stream was still open {BOUND_S:.0f}s after its key was revoked"


def test_scan_stream_ends_when_its_api_key_is_revoked(srv):
    """SSE ``/api/scan/stream``: nothing need happen on the stream for it to notice."""
    with srv.client() as c:
        user_token(srv, c, "root@example.com", "admin")
        owner = bearer(user_token(srv, c, "an@example.com", "analyst")[1])
        made = c.post("/api/v1/api-keys", headers=owner, json={"name": "scans", "scopes": ["scans:read"]}).json()
        with c.stream("GET", "/api/scan/stream", headers={"X-API-Key": made["key"]}, timeout=BOUND_S + 20) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines) == ": connected"
            assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=owner).json()["revoked"] is True
            started = time.monotonic()
            for _line in lines:  # pings, if any, until the server ends the response
                pass
            assert time.monotonic() - started < BOUND_S, "/api/scan/stream outlived its revoked key"


def _aop_frames(lines: Iterator[str], until: Any, limit_s: float = 15.0) -> list[dict[str, Any]]:
    """The ``data:`` payloads of an AOP stream (with their ``id:`` as ``_id``) until
    ``until(payloads)`` holds (or ``limit_s``)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit_s
    frame_id = None
    for line in lines:
        if line.startswith("id:"):
            frame_id = line[3:].strip()
        elif line.startswith("data:"):
            got.append({**json.loads(line[5:]), "_id": frame_id})
            frame_id = None
        if until(got) or time.monotonic() > deadline:
            break
    return got


def test_aop_stream_sends_alerts_only_to_credentials_holding_alerts_read(srv):
    """``sessions:read`` opens ``/stream``; its alerts (and those a resume replays) are for a
    credential that may read alerts, as on the other live streams."""
    from tests.sessions.aop import ev

    with srv.client() as c:
        admin = bearer(user_token(srv, c, "root@example.com", "admin")[1])
        owner = bearer(user_token(srv, c, "an@example.com", "analyst")[1])
        keys = {
            scopes: c.post("/api/v1/api-keys", headers=owner, json={"name": n, "scopes": list(scopes)}).json()["key"]
            for n, scopes in (("s", ("sessions:read",)), ("sa", ("sessions:read", "alerts:read")))
        }
        failing = [ev("s-alert", i, "operation.tool_end", {"tool": "t", "success": False}) for i in (1, 2, 3)]
        marker = ev("s-alert", 4, "cognition.thought")

        def marked(got: list[dict[str, Any]]) -> bool:
            return any(g.get("kind") == "event" and g["data"].get("sequence") == 4 for g in got)

        with (
            c.stream("GET", "/stream", headers={"X-API-Key": keys[("sessions:read",)]}) as narrow,
            c.stream("GET", "/stream", headers={"X-API-Key": keys[("sessions:read", "alerts:read")]}) as wide,
        ):
            assert narrow.status_code == wide.status_code == 200
            narrow_lines, wide_lines = narrow.iter_lines(), wide.iter_lines()
            for lines in (narrow_lines, wide_lines):
                assert _aop_frames(lines, lambda got: bool(got))[0]["type"] == "connected"
            assert c.post("/events", headers=admin, json=failing).status_code == 200
            assert c.post("/events", headers=admin, json=[marker]).status_code == 200
            got_wide = _aop_frames(wide_lines, lambda got: marked(got) and any(g.get("kind") == "alert" for g in got))
            assert [g["data"]["type"] for g in got_wide if g.get("kind") == "alert"] == ["error_cascade"]
            got_narrow = _aop_frames(narrow_lines, marked)
            assert marked(got_narrow)
            assert [g for g in got_narrow if g.get("kind") == "alert"] == []
        # A resume replays the stored events, then the alerts since, then goes live: an event
        # posted once the replay's last stored event is seen arrives after the replayed alerts.
        first = next(g["_id"] for g in got_narrow if g.get("kind") == "event")
        live = iter(range(5, 100))
        for key, alerts in ((("sessions:read",), []), (("sessions:read", "alerts:read"), ["error_cascade"])):
            resume = {"X-API-Key": keys[key], "Last-Event-ID": first}
            with c.stream("GET", "/stream", headers=resume) as again:
                lines = again.iter_lines()
                replayed = _aop_frames(lines, marked)
                assert marked(replayed)
                seq = next(live)
                posted = c.post("/events", headers=admin, json=[ev("s-alert", seq, "cognition.thought")])
                assert posted.status_code == 200
                replayed += _aop_frames(lines, lambda got, n=seq: bool(got) and got[-1]["data"].get("sequence") == n)
            assert replayed[-1]["data"]["sequence"] == seq
            assert [g["data"]["type"] for g in replayed if g.get("kind") == "alert"] == alerts
