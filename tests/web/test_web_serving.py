"""The dashboard served by the real server: pages and files with their types and headers, the
exact Content-Security-Policy, path traversal refused, ``/`` led to ``/ui/``, the files public
while every data call the dashboard makes still needs the signed-in user's token."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.web.assets import ASSETS
from tests.soc.helpers import PASSWORD, AuthServer
from tests.support.server import run_server
from tests.web.nodejs import node_command, node_or_skip

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'; connect-src 'self'"
)
TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


@pytest.fixture(scope="module")
def authed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """Authentication on (as ``tests.soc.helpers.auth_server``), the bundled rules off: they take
    seconds to compile and play no part in serving the dashboard."""
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=module_database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        yield AuthServer(s, c, {"Authorization": f"Bearer {token['access_token']}"})


def host_of(a: AuthServer) -> str:
    return urlsplit(a.server.url).netloc


def policy_for(host: str) -> str:
    return f"{POLICY} ws://{host} wss://{host}"


def assert_dashboard_headers(headers: dict[str, str] | object, host: str) -> None:
    assert headers["content-security-policy"] == policy_for(host)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (clients would normalise ``..`` away); status and body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_root_and_bare_ui_redirect_to_the_dashboard(authed: AuthServer) -> None:
    with authed.server.client(follow_redirects=False) as c:
        for path in ("/", "/ui"):
            r = c.get(path)
            assert r.status_code == 307, path
            assert r.headers["location"] == "/ui/"
            assert_dashboard_headers(r.headers, host_of(authed))


def test_the_shell_is_served_as_html_with_the_exact_policy_without_a_credential(authed: AuthServer) -> None:
    with authed.server.client() as c:  # no credential: the files are public
        r = c.get("/ui/")
    assert r.status_code == 200
    assert r.headers["content-type"] == TYPES["html"]
    assert_dashboard_headers(r.headers, host_of(authed))
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["etag"] == ASSETS["index.html"].etag
    assert r.content == ASSETS["index.html"].body
    assert b'<script type="module" src="/ui/js/app.js"></script>' in r.content


def test_every_file_is_served_with_its_type_headers_and_etag(authed: AuthServer) -> None:
    assert {"js/app.js", "js/api.js", "js/render.js", "css/app.css"} <= set(ASSETS)
    with authed.server.client() as c:
        for name, asset in ASSETS.items():
            r = c.get(f"/ui/{name}")
            assert r.status_code == 200, name
            assert r.headers["content-type"] == TYPES[name.rsplit(".", 1)[1]], name
            assert r.headers["etag"] == asset.etag
            assert r.headers["cache-control"] == "no-cache"
            assert_dashboard_headers(r.headers, host_of(authed))
            assert r.content == asset.body


def test_a_matching_etag_answers_304_without_a_body(authed: AuthServer) -> None:
    etag = ASSETS["js/app.js"].etag
    with authed.server.client() as c:
        r = c.get("/ui/js/app.js", headers={"If-None-Match": etag})
        assert r.status_code == 304
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert_dashboard_headers(r.headers, host_of(authed))
        assert c.get("/ui/js/app.js", headers={"If-None-Match": '"stale"'}).status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "/ui/../pyproject.toml",
        "/ui/../../../../../../etc/passwd",
        "/ui/%2e%2e/routes.py",
        "/ui/js/..%2f..%2froutes.py",
        "/ui/js/%2e%2e/%2e%2e/assets.py",
        "/ui/..%5croutes.py",
        "/ui//etc/passwd",
        "/ui/%2fetc%2fpasswd",
        "/ui/./index.html",
        "/ui/js/%00app.js",
    ],
)
def test_path_traversal_is_refused(authed: AuthServer, target: str) -> None:
    status, body = raw_get(authed.server.url, target)
    assert status == 400, (target, status, body[:200])
    assert b"asset: " in body
    assert b"import" not in body and b"root:" not in body


def test_files_not_shipped_with_the_dashboard_are_404(authed: AuthServer) -> None:
    with authed.server.client() as c:
        for path in ("/ui/routes.py", "/ui/__init__.py", "/ui/js/missing.js", "/ui/static/index.html", "/ui/js"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["message"].startswith("asset: no dashboard file")
            assert_dashboard_headers(r.headers, host_of(authed))
        r = c.get("/ui/" + "a" * 257)
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("asset: ")


def test_a_host_header_that_is_not_a_plain_host_is_never_echoed_into_the_policy(authed: AuthServer) -> None:
    with authed.server.client() as c:
        for host in ("evil.example; script-src *", "a b", "x'y", "h:1/", "h" * 300):
            r = c.get("/ui/", headers={"Host": host})
            assert r.headers["content-security-policy"] == POLICY, host
        r = c.get("/ui/", headers={"Host": "Dash.Example:8443"})
        assert r.headers["content-security-policy"] == policy_for("dash.example:8443")


def test_data_calls_need_the_token_and_answer_the_shapes_the_dashboard_reads(authed: AuthServer) -> None:
    c = authed.client
    calls = {
        "/api/stats": ("events", "ai", "capture"),
        "/api/v1/alerts?limit=1&status=open": ("alerts", "meta", "next_cursor"),
        "/api/v1/cases?limit=50": ("cases", "meta", "next_cursor"),
        "/sessions?limit=50": ("sessions", "total", "next_cursor"),
        "/api/agents?limit=100": ("agents", "count", "total"),
    }
    for path, keys in calls.items():
        assert c.get(path).status_code == 401, path
        r = c.get(path, headers=authed.admin)
        assert r.status_code == 200, (path, r.text)
        assert set(keys) <= set(r.json()), path


def test_the_live_page_socket_is_let_in_by_the_sign_in_cookie_from_its_own_origin(authed: AuthServer) -> None:
    c = authed.client
    login = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
    cookie = login.cookies["aw_access"]
    url = authed.server.ws_url + "/ws/events"
    with connect(url, origin=authed.server.url, additional_headers={"Cookie": f"aw_access={cookie}"}) as ws:
        ws.send('{"type":"subscribe","filter":{"event_types":["ai.*"]}}')
        assert '"subscribed"' in ws.recv(timeout=10)
    with pytest.raises(InvalidStatus) as refused, connect(url, origin=authed.server.url):
        pass
    assert refused.value.response.status_code == 401
    with (
        pytest.raises(InvalidStatus) as foreign,
        connect(url, origin="http://evil.example", additional_headers={"Cookie": f"aw_access={cookie}"}),
    ):
        pass
    assert foreign.value.response.status_code == 403


XSS_TITLE = "<img src=x onerror=alert(1)>"


def seed_alert(engine: Any, title: str) -> str:
    """A real stored alert (through the recorder's store function) with ``title``."""
    ent = {"type": "host", "value": "web-01", "id": entity_id("host", "web-01")}
    event = Event(body={}, event_id="web-e1", event_type="ai.request", ts=1000.0, received_at=1000.0, entities=[ent])
    finding = Finding("atr", "rule-web", title, 8, [event], alert_type="atr", dedup_key="web-dashboard")
    ((alert, _is_new),) = store_findings(engine, [finding], 300)
    return alert["id"]


def test_the_app_run_in_node_signs_in_renders_every_page_triages_and_signs_out(authed: AuthServer) -> None:
    node = node_or_skip()
    alert_id = seed_alert(authed.server.aw.engine, XSS_TITLE)
    case = authed.client.post(
        "/api/v1/cases", headers=authed.admin, json={"title": "Dashboard case", "alert_ids": [alert_id]}
    )
    assert case.status_code == 201, case.text
    env = {
        **os.environ,
        "AW_URL": authed.server.url,
        "AW_EMAIL": "admin@example.com",
        "AW_PASSWORD": PASSWORD,
        "AW_ALERT_ID": alert_id,
        "AW_ALERT_TITLE": XSS_TITLE,
        "AW_CASE_ID": case.json()["id"],
    }
    done = subprocess.run(
        [*node_command(node), str(Path(__file__).parent / "js" / "e2e.mjs")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "e2e ok" in done.stdout
    stored = authed.client.get(f"/api/v1/alerts/{alert_id}", headers=authed.admin).json()
    assert (stored["status"], stored["assignee"]) == ("acknowledged", "alice@example.com")


def test_refusals_of_a_too_long_or_bad_asset_name_carry_the_dashboard_headers(authed: AuthServer) -> None:
    with authed.server.client() as c:
        for path in ("/ui/" + "a" * 257, "/ui/js/%00app.js", "/ui/js/%2e%2e/x.js"):
            r = c.get(path)
            assert r.status_code == 400, path
            assert r.json()["error"]["message"].startswith("asset: "), path
            assert_dashboard_headers(r.headers, host_of(authed))
