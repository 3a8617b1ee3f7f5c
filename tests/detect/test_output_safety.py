"""Alert outputs carry attacker-chosen text (tool names, model ids, paths) and secret URLs.

Chat outputs must not let that text mention a whole channel, open links or make the message
too long to be accepted; the output URL (a Slack/Teams webhook URL is its own credential)
must not reach the logs. Receivers are real HTTP servers on loopback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.notify import build_output, deliver
from tests.support.server import free_port, serve_asgi

HOST = "127.0.0.62"
SECRET_PATH = "/services/T0AW/B0AW/sEcReTtOkEn42"


@contextmanager
def receiver() -> Iterator[tuple[str, list[dict]]]:
    got: list[dict] = []

    async def hook(request: Request) -> Response:
        got.append(orjson.loads(await request.body()))
        return Response(status_code=200)

    port = free_port(HOST)
    with serve_asgi(Starlette(routes=[Route(SECRET_PATH, hook, methods=["POST"])]), HOST, port):
        yield f"http://{HOST}:{port}{SECRET_PATH}", got


def alert(title: str, message: str) -> dict:
    return {
        "id": "a-1",
        "type": "builtin",
        "rule_id": "AW-BUILTIN-UNAPPROVED-MODEL",
        "title": title,
        "message": message,
        "severity": 5,
        "severity_label": "medium",
    }


async def test_slack_text_cannot_mention_the_channel_and_fits_slacks_limit():
    hostile = alert("model @channel @here approved?", "<!channel> " + "<" * 1400 + " & see https://evil.example/x")
    with receiver() as (url, got):
        out = build_output({"kind": "slack", "url": url}, allow_private=True)
        [result] = await deliver([out], [hostile])
        assert result["ok"], result
    [message] = got
    [section] = [b for b in message["blocks"] if b["type"] == "section"]
    text = section["text"]
    assert text["type"] == "mrkdwn" and text["verbatim"] is True  # no automatic @channel / link parsing
    assert "<" not in text["text"] and "&lt;!channel&gt;" in text["text"]
    assert len(text["text"]) <= 3000  # Slack refuses the whole message beyond
    body = text["text"]
    assert not body.rstrip("…").endswith(("&", "&l", "&lt", "&a", "&am", "&amp"))  # never cut inside an entity


async def test_teams_alert_text_is_never_read_as_markdown():
    hostile = alert("[Reset your password](https://evil.example/login)", "**urgent** [click](https://evil.example)")
    with receiver() as (url, got):
        out = build_output({"kind": "teams", "url": url}, allow_private=True)
        [result] = await deliver([out], [hostile])
        assert result["ok"], result
    [message] = got
    body = message["attachments"][0]["content"]["body"]
    for item in body:
        if item["type"] == "TextBlock":  # TextBlocks render Markdown: only our own words go there
            assert "evil.example" not in item["text"] and "urgent" not in item["text"]
    runs = [run for item in body if item["type"] == "RichTextBlock" for run in item["inlines"]]
    assert {run["type"] for run in runs} == {"TextRun"}  # TextRun text is plain, links are not parsed
    texts = [run["text"] for run in runs]
    assert "[MEDIUM] [Reset your password](https://evil.example/login)" in texts
    assert "**urgent** [click](https://evil.example)" in texts


async def test_output_url_is_not_logged_when_an_alert_is_sent(caplog):
    caplog.set_level(logging.DEBUG)
    with receiver() as (url, got):
        outs = [
            build_output({"kind": kind, "url": url, "routing_key": "R0UTEKEY"}, allow_private=True)
            if kind == "pagerduty"
            else build_output({"kind": kind, "url": url}, allow_private=True)
            for kind in ("webhook", "slack", "teams", "pagerduty")
        ]
        results = await deliver(outs, [alert("t", "m")])
        assert all(r["ok"] for r in results), results
    assert len(got) == 4
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert httpx_lines  # httpx still says that a request went out...
    assert not any("sEcReTtOkEn42" in line or "R0UTEKEY" in line for line in httpx_lines)  # ...not where to
    assert "sEcReTtOkEn42" not in caplog.text and "R0UTEKEY" not in caplog.text
