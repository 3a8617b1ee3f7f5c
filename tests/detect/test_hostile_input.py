"""Hostile input on the Seerflow read routes: tampered alert cursors, misspelt filters, mistyped
live-stream filters. Each is refused with a 4xx naming the field, never a 5xx."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from websockets.sync.client import connect

from agentwatch.config import Settings
from tests.detect.helpers import with_detection
from tests.support.server import run_server


def _cursor(obj: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [_cursor([True, "x"]), _cursor([False, "x"]), _cursor(["1", "x"]), _cursor([1.0, 5]), _cursor([1.0, "x" * 65])],
)
def test_tampered_cursor_is_400_naming_cursor(srv, cursor):
    with srv.client() as c:
        r = c.get("/api/v1/alerts", params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("cursor: ")


@pytest.mark.parametrize(
    ("path", "misspelt"),
    [("/api/v1/alerts", "severty"), ("/api/v1/events", "sourcee"), ("/api/v1/sigma/rules", "enable")],
)
def test_a_misspelt_filter_is_refused_not_ignored(srv, path, misspelt):
    # an ignored filter would answer unfiltered while looking filtered
    with srv.client() as c:
        assert c.get(path, params={"limit": 5}).status_code == 200
        r = c.get(path, params={misspelt: "7"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(f"{misspelt}: unknown query parameter")


def test_live_filter_with_a_mistyped_source_is_refused(tmp_path):
    settings = with_detection(
        Settings(data_dir=tmp_path, auth={"enabled": False}), ws_filter_min_interval_ms=0, ws_status_interval_s=60
    )
    with run_server(settings) as srv, connect(srv.ws_url + "/api/v1/ws") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "status"

        def answer(frame: dict) -> dict:
            ws.send(json.dumps(frame))
            return json.loads(ws.recv(timeout=10))

        for bad in (0, False, {}, 5, [""], [1]):
            got = answer({"type": "filter", "source": bad})
            assert got["type"] == "error", (bad, got)
            assert got["error"]["message"].startswith("source: "), got
        for clear in (None, "", []):  # no source filter
            got = answer({"type": "filter", "source": clear})
            assert got == {"type": "filter_ack", "filter": {"min_severity": 0, "source": [], "entity": None}}, got
        got = answer({"type": "filter", "source": "oisp"})
        assert got["type"] == "filter_ack" and got["filter"]["source"] == ["oisp"]
