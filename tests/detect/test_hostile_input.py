"""Hostile input on the Seerflow routes: Sigma uploads with "\\uD800" escapes, tampered alert cursors,
mistyped live-stream filters. Each is refused with a 4xx naming the field, never a 5xx."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from websockets.sync.client import connect

from agentwatch.config import Settings
from tests.detect.helpers import with_detection
from tests.support.server import run_server

RULE = """\
title: Curl piped to shell
id: 9b2f0c1e-0000-4000-8000-0000000000d1
status: test
level: high
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: curl
  condition: sel
"""

# A YAML double-quoted "\\uD800" escape decodes to a lone surrogate: text no JSON encoder or database accepts.
SURROGATES = [
    ("title", RULE.replace("title: Curl piped to shell", 'title: "curl \\uD800"'), "title: contains a lone surrogate"),
    ("description", RULE + 'description: "\\uDC00"\n', "description: contains a lone surrogate"),
    ("tag", RULE + 'tags: ["attack.\\uD83D"]\n', "tags[0]: contains a lone surrogate"),
    (
        "value",
        RULE.replace("CommandLine|contains: curl", 'CommandLine|contains: "cu\\uDFFFrl"'),
        "detection.sel.CommandLine|contains: contains a lone surrogate",
    ),
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry_run", "stored"])
@pytest.mark.parametrize(("name", "text", "expected"), SURROGATES, ids=[c[0] for c in SURROGATES])
def test_lone_surrogate_escape_in_an_upload_is_invalid_rule_naming_the_field(srv, name, text, expected, dry_run):
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": text, "dry_run": dry_run})
        assert r.status_code == 422, (name, r.status_code, r.text[:300])
        error = r.json()["error"]
        assert error["code"] == "INVALID_RULE"
        assert expected in error["message"], error["message"]
        assert isinstance(error["details"]["line"], int)
        # nothing was stored: the catalogue still answers and does not list the rule
        listed = c.get("/api/v1/sigma/rules", params={"format": "sigma"})
        assert listed.status_code == 200, listed.text[:300]
        assert "9b2f0c1e-0000-4000-8000-0000000000d1" not in [x["id"] for x in listed.json()["rules"]]


def test_a_clean_rule_still_uploads(srv):
    text = RULE.replace("0000000000d1", "0000000000d2") + 'description: "emoji \\U0001F600 and \\u00e9"\n'
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": text, "dry_run": True})
    assert r.status_code == 200, r.text
    assert r.json()["rules"][0]["description"] == "emoji \U0001f600 and \u00e9"


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
