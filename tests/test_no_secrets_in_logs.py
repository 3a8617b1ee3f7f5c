"""Secrets never reach the server's logs: a real ``agentwatch serve`` at DEBUG, in both log formats.

One server run per log format and store exercises every feature that handles a secret, each with
its own marker secret: logins (right, wrong, malformed), refresh tokens, API keys in every header,
stream credentials (``?access_token=``, the ``aw_access`` cookie), alert outputs whose URLs, secrets
and routing keys are credentials (delivered to receivers that fail, redirect and hang), the LLM
gateway with provider keys (an upstream that refuses, hangs or is down), OISP, AOP and OTLP events
carrying provider keys, configured secrets (database password, Redis password, JWT key), and a
store that refuses writes (its error carries the rejected row). Then stdout and stderr together
are searched for every marker, raw and URL-encoded. Receivers and upstreams are real HTTP servers
on 127.0.0.1; nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from agentwatch.logs import configure
from tests.support.server import free_port, serve_asgi
from tests.support.services import database_for

BIN = Path(sys.executable).parent / "agentwatch"
ADMIN = "adm@example.com"


def marker(name: str) -> str:
    """A secret no log line can contain by chance."""
    return f"MRK{name}{uuid.uuid4().hex[:12]}"


@dataclass
class Run:
    """What one server run was given and what it wrote."""

    log: str = ""
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> name -> secret
    status: dict[str, Any] = field(default_factory=dict)  # what each exercise got back

    def add(self, group: str, name: str, value: str) -> str:
        self.secrets.setdefault(group, {})[name] = value
        return value

    def leaks(self, group: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, secret in self.secrets[group].items():
            forms = {secret, quote(secret, safe=""), quote(secret)}
            hits = [line[:300] for line in self.log.splitlines() if any(f in line for f in forms)]
            if hits:
                out[name] = hits
        return out


# -- outside things: webhook receivers and an LLM upstream, on loopback --------------------------


def outside_app(seen: list[str]) -> Starlette:
    """Answers by path: ``err`` 500, ``redirect`` 302 to the metadata address, ``slow``/``hang``
    late, ``fail`` 401 (a provider refusing the key), anything else 200 with a JSON body."""

    async def handle(request: Request) -> Response:
        await request.body()
        path = request.url.path
        seen.append(path)
        if "/err/" in path:
            return Response(b"boom", 500)
        if "/redirect/" in path:
            return Response(b"", 302, headers={"location": "http://169.254.169.254/latest/meta-data/"})
        if "/slow/" in path or "/hang/" in path:
            await asyncio.sleep(3)
        if "/fail/" in path:
            return Response(b'{"error": {"message": "invalid api key"}}', 401, media_type="application/json")
        return Response(b'{"id": "x", "choices": []}', 200, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


# -- the exercises ----------------------------------------------------------------------------


def exercise_logins(run: Run, c: httpx.Client, password: str) -> str:
    s = run.status
    login = "/api/v1/auth/login"
    wrong = run.add("passwords", "wrong", marker("wrongpw"))
    s["wrong"] = c.post(login, json={"email": ADMIN, "password": wrong}).status_code
    unknown = run.add("passwords", "unknown_account", marker("unknownpw"))
    s["unknown"] = c.post(login, json={"email": "nobody@example.com", "password": unknown}).status_code
    long = run.add("passwords", "too_long", marker("longpw") + "x" * 2000)
    s["too_long"] = c.post(login, json={"email": ADMIN, "password": long}).status_code
    broken = run.add("passwords", "malformed_body", marker("brokenpw"))
    body = b'{"email": "' + ADMIN.encode() + b'", "password": "' + broken.encode() + b'"'
    s["malformed"] = c.post(login, content=body, headers={"content-type": "application/json"}).status_code
    extra = run.add("passwords", "extra_field", marker("extrapw"))
    s["extra"] = c.post(login, json={"email": ADMIN, "password": extra, "otp": extra}).status_code
    r = c.post(login, json={"email": ADMIN, "password": password})
    s["login"] = r.status_code
    assert r.status_code == 200, r.text
    first = r.json()
    run.add("tokens", "access", first["access_token"])
    run.add("tokens", "refresh_secret", first["refresh_token"].removeprefix("awr_"))
    r = c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    s["refresh"] = r.status_code
    second = r.json()
    run.add("tokens", "access_refreshed", second["access_token"])
    run.add("tokens", "refresh_refreshed", second["refresh_token"].removeprefix("awr_"))
    # the spent token again: the family is revoked (auth.refresh.reuse)
    s["refresh_reuse"] = c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code
    bogus = run.add("tokens", "bogus_refresh", marker("bogusrefresh"))
    s["refresh_bogus"] = c.post("/api/v1/auth/refresh", json={"refresh_token": "awr_" + bogus}).status_code
    r = c.post(login, json={"email": ADMIN, "password": password})
    access = run.add("tokens", "access_final", r.json()["access_token"])
    me = "/api/v1/users/me"
    for name, header in (
        ("basic", "Basic " + marker("basic")),
        ("bad_jwt", "Bearer " + marker("badjwt")),
        ("bad_key", "Bearer aw_0123456789ab_" + marker("badkey")),
        ("too_long", "Bearer " + marker("longtoken") + "a" * 9000),
    ):
        run.add("tokens", f"authorization_{name}", header.split(" ", 1)[1])
        s[f"authorization_{name}"] = c.get(me, headers={"Authorization": header}).status_code
    not_key = run.add("tokens", "x_api_key_not_a_key", marker("xapikey"))
    s["x_api_key_not_a_key"] = c.get(me, headers={"X-API-Key": not_key}).status_code
    return access


def exercise_keys_and_users(run: Run, c: httpx.Client, access: str) -> str:
    s = run.status
    h = {"Authorization": f"Bearer {access}"}
    r = c.post("/api/v1/api-keys", headers=h, json={"name": "ci", "scopes": ["admin"]})
    s["key_create"] = r.status_code
    key = r.json()["key"]
    run.add("tokens", "api_key_secret", key.split("_", 2)[2])
    s["key_uses"] = [
        c.get("/api/v1/users/me", headers=hdr).status_code
        for hdr in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}, {"X-Agentwatch-Key": key})
    ]
    user_pw = run.add("passwords", "new_user", marker("newuserpw"))
    s["user_create"] = c.post(
        "/api/v1/users", headers=h, json={"email": "ana@example.com", "role": "analyst", "password": user_pw}
    ).status_code
    current = run.add("passwords", "change_current_wrong", marker("currentpw"))
    new = run.add("passwords", "change_new", marker("newpw"))
    s["password_change"] = c.put(
        "/api/v1/users/me/password", headers=h, json={"current_password": current, "new_password": new}
    ).status_code
    return key


def exercise_streams(run: Run, url: str, access: str, key: str) -> None:
    """Stream credentials travel in the URL or a cookie (browsers cannot set headers there)."""
    s = run.status
    sse = {"Accept": "text/event-stream"}
    with httpx.Client(base_url=url, timeout=10) as c:
        with c.stream("GET", "/api/scan/stream", params={"access_token": access}, headers=sse) as r:
            s["sse_query_jwt"] = r.status_code
        with c.stream("GET", "/stream", params={"access_token": key}, headers=sse) as r:
            s["sse_query_key"] = r.status_code
        with c.stream("GET", "/api/scan/stream", headers={**sse, "Cookie": f"aw_access={access}"}) as r:
            s["sse_cookie"] = r.status_code
    ws = url.replace("http://", "ws://", 1)
    with ws_connect(f"{ws}/api/v1/ws?access_token={access}", open_timeout=10) as conn:
        conn.send(json.dumps({"type": "filter", "min_severity": 3}))
        s["ws_query_jwt"] = "open" if json.loads(conn.recv(timeout=10)).get("type") else "no frame"
    with ws_connect(f"{ws}/ws/events?access_token={quote(key, safe='')}", open_timeout=10):
        s["ws_query_key"] = "open"
    with ws_connect(
        f"{ws}/ws/stats", open_timeout=10, additional_headers={"Authorization": f"Bearer {access}"}
    ) as conn:
        s["ws_authorization"] = json.loads(conn.recv(timeout=10))["type"]
    with ws_connect(f"{ws}/ws/stats", open_timeout=10, additional_headers={"Cookie": f"aw_access={access}"}) as conn:
        s["ws_cookie"] = json.loads(conn.recv(timeout=10))["type"]
    bad = run.add("tokens", "ws_bad_query", marker("wsbad"))
    try:
        with ws_connect(f"{ws}/api/v1/ws?access_token={bad}", open_timeout=10):
            s["ws_bad"] = "open"
    except InvalidStatus as exc:
        s["ws_bad"] = exc.response.status_code
    # handshakes the WebSocket library parses differently (HTTP/1.0, a refused key), written raw
    port = int(url.rsplit(":", 1)[1])
    raw_statuses = []
    for version, ws_key in (("HTTP/1.0", "dGhlIHNhbXBsZSBub25jZQ=="), ("HTTP/1.1", "bad")):
        token = run.add("tokens", f"raw_{version}_{ws_key}", marker("rawws"))
        cookie = run.add("tokens", f"raw_cookie_{version}_{ws_key}", marker("rawcookie"))
        request = (
            f"GET /api/v1/ws?access_token={token} {version}\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {ws_key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Cookie: aw_access={cookie}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request.encode())
            raw_statuses.append(sock.recv(64).split(b" ", 2)[1].decode())
    s["ws_raw"] = raw_statuses


def exercise_alert_outputs(run: Run, c: httpx.Client, access: str, outside: str) -> None:
    s = run.status
    h = {"Authorization": f"Bearer {access}"}
    a = run.add

    def path(name: str) -> str:
        return a("outputs", f"{name}_path", marker(name))

    settings = {
        "alert_enabled": True,
        "webhook_url": f"{outside}/hook/{path('webhook')}?token={a('outputs', 'webhook_query', marker('whq'))}",
        "webhook_secret": a("outputs", "webhook_secret", marker("whsecret")),
        "webhook_headers": {"Authorization": "Bearer " + a("outputs", "webhook_header", marker("whheader"))},
        "outputs": [
            {"kind": "slack", "url": f"{outside}/services/T0/B0/{path('slack')}"},
            {"kind": "teams", "url": f"{outside}/err/{path('teams')}"},
            {"kind": "pagerduty", "url": f"{outside}/pd/{path('pd')}", "routing_key": a("outputs", "rk", marker("rk"))},
            {
                "kind": "webhook",
                "url": f"{outside}/redirect/{path('redir')}",
                "secret": a("outputs", "s2", marker("s")),
            },
            {"kind": "webhook", "url": f"{outside}/slow/{path('slow')}", "timeout_s": 0.5},
            {"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/down/{path('down')}"},
        ],
    }
    s["settings_put"] = c.put("/api/settings", headers=h, json=settings).status_code
    r = c.post("/api/settings/test", headers=h)
    s["settings_test"] = [o["ok"] for o in r.json()["outcomes"]]
    refused = {
        "metadata": f"http://169.254.169.254/{a('outputs', 'refused_path', marker('metapath'))}",
        "credentials": f"http://user:{a('outputs', 'refused_password', marker('urlpw'))}@127.0.0.1/",
    }
    for name, bad in refused.items():
        s[f"settings_refused_{name}"] = c.put("/api/settings", headers=h, json={"webhook_url": bad}).status_code


def exercise_gateway(run: Run, c: httpx.Client, key: str) -> None:
    s = run.status
    provider_key = "sk-proj-" + run.add("provider", "openai_key", marker("openaikey"))
    headers = {"X-Agentwatch-Key": key, "Authorization": f"Bearer {provider_key}"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    for name in ("ok", "fail", "hang"):
        prefix = "" if name == "ok" else f"/{name}"
        s[f"gateway_{name}"] = c.post(
            f"/gateway/fake{prefix}/v1/chat/completions", headers=headers, json=body
        ).status_code
    s["gateway_down"] = c.post("/gateway/down/v1/chat/completions", headers=headers, json=body).status_code
    anthropic = run.add("provider", "anthropic_key", marker("antkey"))
    s["gateway_x_api_key"] = c.post(
        "/gateway/fake/v1/messages", headers={"X-Agentwatch-Key": key, "x-api-key": anthropic}, json=body
    ).status_code
    gemini = run.add("provider", "gemini_query_key", marker("gemkey"))
    goog = run.add("provider", "gemini_header_key", marker("googkey"))
    gem_body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    for name in ("ok", "hang"):
        prefix = "" if name == "ok" else f"/{name}"
        s[f"gemini_{name}"] = c.post(
            f"/gateway/gemini{prefix}/v1beta/models/gemini-1.5-flash:generateContent?key={gemini}",
            headers={"X-Agentwatch-Key": key, "x-goog-api-key": goog},
            json=gem_body,
        ).status_code
    nowhere = run.add("provider", "unknown_route_key", marker("noroute"))
    s["gateway_unknown_route"] = c.post(
        f"/gateway/nope/v1/chat/completions?key={nowhere}", headers=headers, json=body
    ).status_code


def exercise_events(run: Run, c: httpx.Client, key: str) -> None:
    s = run.status
    h = {"X-API-Key": key}
    aws = run.add("events", "aws_key", "AKIA" + uuid.uuid4().hex[:16].upper())
    sk = "sk-proj-" + run.add("events", "openai_key", marker("ingestsk"))
    data = {"exe": "/bin/sh", "cmdline": f"env OPENAI_API_KEY={sk} AWS_ACCESS_KEY_ID={aws}"}
    r = c.post("/api/v1/ingest", headers=h, json={"event_type": "process.exec", "data": data})
    s["oisp"] = r.json()["stored"]
    r = c.post("/api/v1/ingest", headers=h, json={"event_type": "process.exec", "data": data, "surprise": sk})
    s["oisp_refused"] = r.json()["rejected"]
    r = c.post("/api/v1/ingest", headers=h, content=b'{"event_type": "' + sk.encode())
    s["oisp_malformed"] = r.json()["rejected"]
    aop = {
        "spec": "aop/1.0",
        "session_id": "sess_logs",
        "agent_id": "agent",
        "sequence": 1,
        "timestamp": "2026-04-03T10:00:00.000Z",
        "type": "operation.tool_start",
        "payload": {"tool": "shell", "tool_call_id": "c1", "input": {"cmd": f"aws s3 ls # {aws} {sk}"}},
    }
    s["aop"] = c.post("/events", headers=h, json=aop).json()["ok"]
    s["aop_refused"] = c.post("/events", headers=h, json={**aop, "sequence": "one", "x": sk}).status_code
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "chat",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.prompt.0.role", "value": {"stringValue": "user"}},
            {"key": "gen_ai.prompt.0.content", "value": {"stringValue": f"use {sk} and {aws}"}},
        ],
    }
    otlp = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    s["otlp"] = c.post("/v1/traces", headers=h, json=otlp).status_code
    span["startTimeUnixNano"] = sk
    s["otlp_refused"] = c.post("/v1/traces", headers=h, json=otlp).status_code


def refuse_writes(database_url: str, table: str) -> None:
    """The store starts refusing new rows of ``table`` (as a full disk or an operator's constraint
    would); the server itself is not touched."""
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)) as conn:
            for op in ("INSERT", "UPDATE"):
                body = "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                conn.execute(f"CREATE TRIGGER refuse_{op}_{table} BEFORE {op} ON {table} {body}")
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT refuse_{table} CHECK (false) NOT VALID")


def exercise_store_failure(run: Run, c: httpx.Client, key: str, access: str, database_url: str, outside: str) -> None:
    s = run.status
    refuse_writes(database_url, "events")
    # short values: PostgreSQL quotes the first 64 characters of each column of a refused row
    secret = run.add("store", "event_key", "sk-" + uuid.uuid4().hex[:16])
    r = c.post(
        "/api/v1/ingest", headers={"X-API-Key": key}, json={"event_type": "process.exec", "data": {"exe": secret}}
    )
    s["store_ingest"] = r.status_code
    refuse_writes(database_url, "kv")
    hook = run.add("store", "webhook_secret", marker("storewh"))
    r = c.put(
        "/api/settings",
        headers={"Authorization": f"Bearer {access}"},
        json={"webhook_secret": hook, "webhook_url": f"{outside}/{run.add('store', 'path', marker('storepath'))}"},
    )
    s["store_settings"] = r.status_code


def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code in (200, 503):
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


# Each store once and each log format once: a run is a whole server's session (half a minute of
# CPU), and the masking happens before either format renders a line (the rendering itself is
# checked in both formats below, record by record).
RUNS = [
    pytest.param(("json", "sqlite"), id="json-sqlite"),
    pytest.param(("console", "postgresql"), id="console-postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=RUNS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    fmt, backend = request.param
    tmp = tmp_path_factory.mktemp(f"logs-{fmt}-{backend}")
    with contextmanager(database_for)(backend, tmp) as database_url:  # a fresh database per run
        yield from serve_and_exercise(fmt, database_url, tmp)


def serve_and_exercise(fmt: str, database_url: str, tmp: Path) -> Iterator[Run]:
    run = Run()
    if database_url.startswith("postgresql://postgres@"):  # trust auth: any password is accepted
        db_password = run.add("config", "database_password", marker("dbpw"))
        database_url = database_url.replace("postgres@", f"postgres:{db_password}@", 1)
    seen: list[str] = []
    outside_port = free_port()
    outside = f"http://127.0.0.1:{outside_port}"
    routes = {
        "fake": {"provider": "openai_compatible", "base_url": outside},
        "gemini": {"provider": "gemini", "base_url": outside},
        "down": {"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}"},
    }
    detection_output = {
        "kind": "webhook",
        "url": f"{outside}/detect/{run.add('config', 'detection_output_path', marker('detpath'))}",
        "secret": run.add("config", "detection_output_secret", marker("detsecret")),
    }
    redis_password = run.add("config", "redis_password", marker("redis"))  # the test Redis ignores it
    env = {
        **os.environ,
        "AGENTWATCH_DATA_DIR": str(tmp),
        "AGENTWATCH_DATABASE_URL": database_url,
        "AGENTWATCH_LOG_LEVEL": "DEBUG",
        "AGENTWATCH_LOG_FORMAT": fmt,
        "AGENTWATCH_AUTH__JWT_SECRET": run.add("config", "jwt_secret", marker("jwt") + "k" * 32),
        "AGENTWATCH_REDIS_URL": f"redis://default:{redis_password}@127.0.0.1:6379/0",
        "AGENTWATCH_AUTH__OPEN_INGEST_ON_LOOPBACK": "false",
        "AGENTWATCH_AUTH__RATE_LIMIT__ENABLED": "false",
        "AGENTWATCH_AUTH__LOGIN__PER_ACCOUNT": "100",
        "AGENTWATCH_AUTH__LOGIN__PER_ADDRESS": "100",
        # counters of this run only: Redis outlives the run, and its failed logins count
        "AGENTWATCH_AUTH__RATE_LIMIT__REDIS_PREFIX": f"aw-logs-{uuid.uuid4().hex[:8]}:",
        "AGENTWATCH_DISCOVERY__NOTIFY_ALLOW_PRIVATE": "true",
        "AGENTWATCH_CAPTURE__ALLOW_LOOPBACK_UPSTREAMS": "true",
        "AGENTWATCH_CAPTURE__UPSTREAM_TIMEOUT_S": "1",
        "AGENTWATCH_CAPTURE__ROUTES": json.dumps(routes),
        "AGENTWATCH_DETECTION__ATR_BUNDLED": "false",
        "AGENTWATCH_DETECTION__PACK": "false",
        "AGENTWATCH_DETECTION__OUTPUTS": json.dumps([detection_output]),
        "AGENTWATCH_DETECTION__OUTPUTS_ALLOW_PRIVATE": "true",
    }
    password = run.add("passwords", "right", marker("password"))
    created = subprocess.run(
        [str(BIN), "users", "create", ADMIN, "--role", "admin", "--password-stdin"],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr[-2000:]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # the log goes to a file: a pipe nobody reads until the end fills up and stalls the server
    log_path = tmp / "server.log"
    with serve_asgi(outside_app(seen), "127.0.0.1", outside_port), log_path.open("wb") as log_file:
        proc = subprocess.Popen([str(BIN), "serve", "--port", str(port)], env=env, stdout=log_file, stderr=log_file)
        failure: Exception | None = None
        try:
            wait_up(url, proc)
            with httpx.Client(base_url=url, timeout=30) as c:
                access = exercise_logins(run, c, password)
                key = exercise_keys_and_users(run, c, access)
                exercise_streams(run, url, access, key)
                exercise_alert_outputs(run, c, access, outside)
                exercise_gateway(run, c, key)
                exercise_events(run, c, key)
                exercise_store_failure(run, c, key, access, database_url, outside)
        except Exception as exc:
            failure = exc
        finally:
            proc.terminate()
            proc.wait(timeout=90)
    run.log = log_path.read_text(errors="replace")
    if failure is not None:
        raise AssertionError(f"{failure!r}; the server's log ends with:\n{run.log[-6000:]}") from failure
    run.status["outside_paths"] = seen
    yield run


def test_the_run_logged_at_debug_and_stopped_cleanly(run: Run):
    lines = run.log.splitlines()
    assert len(lines) > 100
    assert any("debug" in line for line in lines)  # uvicorn, websockets and httpcore write DEBUG lines
    assert any("server.stopped" in line for line in lines)


def test_passwords_are_not_logged(run: Run):
    s = run.status
    assert (s["login"], s["wrong"], s["unknown"]) == (200, 401, 401)
    # over 1024 characters, malformed JSON, an unknown field: refused before any check
    assert (s["too_long"], s["malformed"], s["extra"]) == (400, 400, 400)
    assert (s["user_create"], s["password_change"]) == (201, 403)  # a wrong current password: refused
    assert run.leaks("passwords") == {}


def test_tokens_and_api_keys_are_not_logged(run: Run):
    s = run.status
    assert (s["refresh"], s["refresh_reuse"], s["refresh_bogus"]) == (200, 401, 401)
    assert s["key_create"] == 201 and s["key_uses"] == [200, 200, 200]
    assert {s[f"authorization_{n}"] for n in ("basic", "bad_jwt", "bad_key", "too_long")} <= {400, 401}
    assert run.leaks("tokens") == {}


def test_stream_credentials_in_the_url_or_a_cookie_are_not_logged(run: Run):
    s = run.status
    assert (s["sse_query_jwt"], s["sse_query_key"], s["sse_cookie"]) == (200, 200, 200)
    assert (s["ws_query_jwt"], s["ws_query_key"], s["ws_authorization"], s["ws_cookie"]) == (
        "open",
        "open",
        "stats",
        "stats",
    )
    assert s["ws_bad"] == 401 and s["ws_raw"] == ["401", "400"]
    assert run.leaks("tokens") == {}
    # the handshake lines are still logged, with the credential masked
    assert "/api/v1/ws?access_token=***" in run.log


def test_alert_output_urls_secrets_and_routing_keys_are_not_logged(run: Run):
    s = run.status
    assert s["settings_put"] == 200
    # webhook, slack, pagerduty deliver; teams gets 500, the redirect is not followed, slow times out, down refuses
    assert s["settings_test"] == [True, True, False, True, False, False, False]
    assert s["settings_refused_metadata"] == 400 and s["settings_refused_credentials"] == 400
    assert not any("169.254" in p for p in s["outside_paths"])
    assert run.leaks("outputs") == {}


def test_provider_keys_through_the_gateway_are_not_logged(run: Run):
    s = run.status
    assert (s["gateway_ok"], s["gateway_fail"], s["gateway_hang"], s["gateway_down"]) == (200, 401, 504, 502)
    assert (s["gemini_ok"], s["gemini_hang"], s["gateway_x_api_key"], s["gateway_unknown_route"]) == (
        200,
        504,
        200,
        404,
    )
    assert run.leaks("provider") == {}


def test_secrets_inside_events_are_not_logged(run: Run):
    s = run.status
    assert (s["oisp"], s["oisp_refused"], s["oisp_malformed"]) == (1, 1, 1)
    assert (s["aop"], s["aop_refused"]) == (True, 400) and (s["otlp"], s["otlp_refused"]) == (200, 400)
    assert run.leaks("events") == {}


def test_configured_secrets_are_not_logged(run: Run):
    assert run.leaks("config") == {}


def test_a_store_refusing_writes_does_not_log_the_refused_rows(run: Run):
    assert run.status["store_ingest"] == 500 and run.status["store_settings"] == 500
    assert "refuse" in run.log  # the database error itself is logged, with its traceback
    assert run.leaks("store") == {}


# -- the log pipeline itself, on records no server run produces on demand --------------------


@pytest.fixture(params=["json", "console"])
def rendered(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``render(record)``: the text ``configure`` writes for a standard-library record."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_structlog = structlog.get_config()
    try:
        configure("DEBUG", request.param)
        (handler,) = root.handlers
        yield handler.format
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.configure(**saved_structlog)


def record(message: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("some.library", logging.ERROR, __file__, 1, message, args, None)


SECRET_SHAPES = [
    # (what a library may print, the secret in it, what must stay readable)
    ("connect to postgresql://app:{s}@db.internal/agentwatch failed", "pw-{m}", "@db.internal/agentwatch"),
    ("POST https://hooks.slack.com/services/T000/B000/{s} failed", "{m}", "hooks.slack.com/services/"),
    ("GET /v1beta/models/x:generateContent?alt=sse&key={s}", "{m}", "?alt=sse&key=***"),
    ("upstream said: Authorization: Bearer {s}", "{m}", "Authorization: ***"),
    ("key material:\n-----BEGIN EC PRIVATE KEY-----\n{s}\n-----END EC PRIVATE KEY-----\nend", "{m}", "\nend"),
    ("conninfo: host=db password={s} user=app", "{m}", "user=app"),
    ("the case says token={s} was used", "{m}", "was used"),
    ("retry with session_token={s} later", "{m}", "later"),
    ("passphrase = {s}; id_token={s}", "{m}", "passphrase = ***"),
    ("max_tokens=512 token_count=7", "", "max_tokens=512 token_count=7"),  # counts of tokens are no secret
    ("agent sent ghp_{s}", "{m}AAAAAAAAAAAAAAAAAAAAAAAA", "agent sent"),
]


@pytest.mark.parametrize(("template", "secret", "kept"), SECRET_SHAPES)
def test_known_secret_shapes_are_masked_in_any_log_line(rendered: Any, template: str, secret: str, kept: str):
    secret = secret.format(m=uuid.uuid4().hex)
    text = rendered(record(template.format(s=secret)))
    assert (not secret or secret not in text) and kept in text.replace("\\n", "\n")


def test_a_database_error_keeps_its_message_but_not_the_values(rendered: Any):
    secret = "sk-" + uuid.uuid4().hex
    try:
        raise RuntimeError(
            "(sqlite3.IntegrityError) refused\n[SQL: INSERT INTO kv (key, value) VALUES (?, ?)]\n"  # noqa: S608
            f"[parameters: ('discovery.alerts', '{{\"webhook_secret\": \"{secret}\"}}')]\n"
            f"DETAIL:  Failing row contains (discovery.alerts, {secret})."
        )
    except RuntimeError:
        exc_info = sys.exc_info()
    text = rendered(logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception", None, exc_info))
    assert secret not in text
    assert "IntegrityError) refused" in text and "INSERT INTO kv" in text  # still says what failed


def test_fields_naming_a_credential_are_masked(rendered: Any):
    token = uuid.uuid4().hex
    text = rendered(record("%s", {"nested": {"refresh_token": token}}))
    assert token not in text and "refresh_token" in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_structlog_fields_naming_a_credential_are_masked(fmt: str, capsys: pytest.CaptureFixture[str]):
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    password = uuid.uuid4().hex
    try:
        configure("INFO", fmt)  # writes to sys.stderr, which capsys holds by now
        structlog.get_logger("t").info("login", password=password, user="ana")
    finally:
        structlog.configure(**saved)
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
    printed = capsys.readouterr().err
    assert password not in printed and "ana" in printed and "login" in printed
