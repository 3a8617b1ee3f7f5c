"""Rate limits per credential and per address, shared through Redis; Origin checks on streams."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from agentwatch.soc.auth.apikeys import ApiKeyStore
from agentwatch.soc.auth.users import UserStore
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
from tests.auth.conftest import PASSWORD, add_user, auth_settings, bearer, login
from tests.support.server import free_port, run_server
from tests.support.services import REDIS_URL, require_service
from tests.support.windows import wait_out_window_edge


def test_per_credential_limits_with_headers_and_429(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, rate_limit={"api_key": 3, "user": 2, "window_s": 3600})
    with run_server(settings) as srv:
        uid = add_user(srv, "ana@example.com", "analyst")
        keys = [
            srv.aw.auth.keys.create(owner_id=uid, created_by="t", name=n, scopes=["events:read"], expires_at=None)[1]
            for n in ("a", "b")
        ]
        wait_out_window_edge(3600)
        with srv.client() as c:
            remaining = []
            for _ in range(3):
                r = c.get("/api/events", headers={"X-API-Key": keys[0]})
                assert r.status_code == 200
                assert r.headers["x-ratelimit-limit"] == "3"
                remaining.append(int(r.headers["x-ratelimit-remaining"]))
                reset = int(r.headers["x-ratelimit-reset"])
                assert time.time() < reset <= time.time() + 3600
            assert remaining == [2, 1, 0]
            r = c.get("/api/events", headers={"X-API-Key": keys[0]})
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "RATE_LIMITED"
            assert r.json()["error"]["message"] == "rate limit: 3 requests per 3600s exceeded, retry later"
            assert 0 < int(r.headers["retry-after"]) <= 3600 and r.headers["x-ratelimit-remaining"] == "0"
            # another key has its own budget
            assert c.get("/api/events", headers={"X-API-Key": keys[1]}).status_code == 200
            # a user session is charged at the user rate (the login itself is anonymous, loopback-exempt)
            h = bearer(login(c, "ana@example.com")["access_token"])
            assert [c.get("/api/events", headers=h).status_code for _ in range(3)] == [200, 200, 429]


def test_per_address_limit_for_requests_without_credential(tmp_path: Path, sqlite_url: str):
    limits = {"address": 2, "window_s": 3600, "loopback_exempt": False}
    with run_server(auth_settings(tmp_path, sqlite_url, rate_limit=limits)) as srv:
        wait_out_window_edge(3600)
        with srv.client() as c:
            assert [c.get("/healthz").status_code for _ in range(3)] == [200, 200, 429]
            # an invalid credential does not escape the address budget
            assert c.get("/healthz", headers={"X-API-Key": "aw_000000000000_nope"}).status_code == 429


def test_limits_are_off_with_auth_disabled(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, enabled=False, rate_limit={"address": 1, "loopback_exempt": False})
    with run_server(settings) as srv, srv.client() as c:
        assert [c.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]


def test_websocket_and_sse_refuse_a_foreign_origin(tmp_path: Path, sqlite_url: str):
    with run_server(auth_settings(tmp_path, sqlite_url)) as srv:
        uid = add_user(srv, "ana@example.com", "analyst")
        _, key = srv.aw.auth.keys.create(
            owner_id=uid, created_by="t", name="k", scopes=["events:read"], expires_at=None
        )
        url = srv.ws_url + "/ws/events"
        foreign = {"additional_headers": {"X-API-Key": key}, "origin": "http://evil.example", "open_timeout": 10}
        with pytest.raises(InvalidStatus) as exc, connect(url, **foreign):
            pass
        assert exc.value.response.status_code == 403
        # same origin, with the key in the query string (browsers cannot set headers): accepted
        host = srv.url.removeprefix("http://")
        with connect(f"{url}?access_token={key}", origin=f"http://{host}", open_timeout=10) as ws:
            ws.send('{"type": "subscribe", "filter": {}}')
            assert '"subscribed"' in ws.recv(timeout=10)
        # without any credential the handshake is refused even from the same origin
        with pytest.raises(InvalidStatus), connect(url, origin=f"http://{host}", open_timeout=10):
            pass
        with srv.client() as c:
            sse = {"Accept": "text/event-stream", "Origin": "http://evil.example", "X-API-Key": key}
            r = c.get("/api/events", headers=sse)
            assert r.status_code == 403 and r.json()["error"]["message"] == "origin: not allowed"
            assert c.get("/api/events", headers={**sse, "Origin": f"http://{host}"}).status_code == 200


def _serve(port: int, env: dict[str, str], log: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentwatch.cli", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


@pytest.mark.redis
def test_two_server_processes_share_one_budget_through_redis(tmp_path: Path, sqlite_url: str):
    require_service("Redis", "127.0.0.1", 6379)
    engine = make_engine(sqlite_url)
    migrate(engine)
    user = UserStore(engine).create("svc@example.com", PASSWORD, "analyst")
    _, key = ApiKeyStore(engine).create(
        owner_id=user.id, created_by="t", name="shared", scopes=["events:read"], expires_at=None
    )
    engine.dispose()
    env = {
        **os.environ,
        "AGENTWATCH_DATA_DIR": str(tmp_path),
        "AGENTWATCH_DATABASE_URL": sqlite_url,
        "AGENTWATCH_REDIS_URL": REDIS_URL,
        "AGENTWATCH_AUTH__RATE_LIMIT__API_KEY": "6",
        "AGENTWATCH_AUTH__RATE_LIMIT__WINDOW_S": "3600",
        "AGENTWATCH_AUTH__RATE_LIMIT__REDIS_PREFIX": f"awtest:{uuid.uuid4().hex}:",
        "AGENTWATCH_DETECTION__ATR_BUNDLED": "false",
        "AGENTWATCH_DETECTION__PACK": "false",
        "AGENTWATCH_LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    logs = [open(tmp_path / f"serve-{p}.log", "wb") for p in ports]  # noqa: SIM115 - closed below
    procs = [_serve(p, env, log) for p, log in zip(ports, logs, strict=True)]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs, strict=True):
            _wait_healthy(url, proc, deadline)
        wait_out_window_edge(3600)
        seen = []
        for i in range(8):  # alternate between the two processes
            r = httpx.get(urls[i % 2] + "/api/events", headers={"X-API-Key": key}, timeout=10)
            seen.append((r.status_code, r.headers.get("x-ratelimit-remaining")))
        assert seen == [(200, "5"), (200, "4"), (200, "3"), (200, "2"), (200, "1"), (200, "0"), (429, "0"), (429, "0")]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        for log in logs:
            log.close()


def test_unreachable_redis_falls_back_to_in_process_limits(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, rate_limit={"api_key": 2, "window_s": 3600})
    settings = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})  # nothing listens
    with run_server(settings) as srv:
        uid = add_user(srv, "ana@example.com", "analyst")
        _, key = srv.aw.auth.keys.create(
            owner_id=uid, created_by="t", name="k", scopes=["events:read"], expires_at=None
        )
        wait_out_window_edge(3600)
        with srv.client(headers={"X-API-Key": key}) as c:
            assert [c.get("/api/events").status_code for _ in range(3)] == [200, 200, 429]
