"""Alert outputs against a real receiver on loopback: HMAC signature, formats, routing, SSRF refusals."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest

from agentwatch.notify import build_output, deliver
from tests.discovery.receivers import Receiver, free_port
from tests.discovery.servers import Spec, serve

HOST = "127.0.0.60"


def alert(severity: int, title: str = "new agent", **extra: object) -> dict:
    return {
        "id": f"a-{severity}",
        "type": "discovery",
        "detector": "discovery",
        "rule_id": "discovery.new_agent",
        "title": title,
        "message": "found <b>ollama</b> & friends",
        "severity": severity,
        "severity_label": "high" if severity >= 7 else "low",
        "last_seen": "2026-01-01T00:00:00Z",
        "details": {},
        **extra,
    }


@pytest.fixture(scope="module")
def receiver():
    rec = Receiver()
    port = free_port(HOST)
    with serve([Spec(HOST, port, rec.app())]):
        yield rec, f"http://{HOST}:{port}"


async def test_webhook_is_hmac_signed_and_verifiable_by_the_receiver(receiver):
    rec, base = receiver
    rec.requests.clear()
    out = build_output({"kind": "webhook", "url": f"{base}/hook", "secret": "s3cret"}, allow_private=True)
    results = await deliver([out], [alert(7), alert(2)])
    assert results[0]["ok"] and results[0]["sent"] == 2
    [req] = rec.requests
    ts = req["headers"]["x-agentwatch-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    expected = "sha256=" + hmac.new(b"s3cret", ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["x-agentwatch-signature"] == expected
    wrong = "sha256=" + hmac.new(b"other", ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["x-agentwatch-signature"] != wrong
    doc = orjson.loads(req["body"])
    assert [a["id"] for a in doc["alerts"]] == ["a-7", "a-2"]


async def test_routing_by_minimum_severity_and_chat_formats(receiver):
    rec, base = receiver
    rec.requests.clear()
    outs = [
        build_output({"kind": "slack", "url": f"{base}/slack", "min_severity": 5}, allow_private=True),
        build_output({"kind": "teams", "url": f"{base}/teams", "min_severity": 0}, allow_private=True),
        build_output({"kind": "pagerduty", "url": f"{base}/pd", "routing_key": "R0UT1NG"}, allow_private=True),
    ]
    results = await deliver(outs, [alert(7), alert(2)])
    assert [(r["kind"], r["sent"], r["skipped"], r["ok"]) for r in results] == [
        ("slack", 1, 1, True),
        ("teams", 2, 0, True),
        ("pagerduty", 2, 0, True),
    ]
    by_path: dict[str, list[dict]] = {}
    for r in rec.requests:
        by_path.setdefault(r["path"], []).append(orjson.loads(r["body"]))
    [slack] = by_path["/slack"]
    assert slack["text"] == "agentwatch: 1 alert"
    section = slack["blocks"][1]["text"]["text"]
    assert "&lt;b&gt;ollama&lt;/b&gt; &amp; friends" in section and "<b>" not in section
    [teams] = by_path["/teams"]
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and len(card["content"]["body"]) == 5
    pd = sorted(by_path["/pd"], key=lambda e: e["dedup_key"])
    assert [e["payload"]["severity"] for e in pd] == ["info", "error"]
    assert {e["routing_key"] for e in pd} == {"R0UT1NG"} and {e["event_action"] for e in pd} == {"trigger"}


async def test_delivery_failures_are_reported_not_raised(receiver):
    _rec, base = receiver
    outs = [
        build_output({"kind": "webhook", "url": f"{base}/fail"}, allow_private=True),
        build_output({"kind": "webhook", "url": f"{base}/redirect"}, allow_private=True),
        build_output(
            {"kind": "webhook", "url": f"http://{HOST}:{free_port(HOST)}/x", "timeout_s": 1}, allow_private=True
        ),
    ]
    results = await deliver(outs, [alert(5)])
    assert [r["ok"] for r in results] == [False, False, False]
    assert "answered 500" in results[0]["error"]
    assert "redirects are not followed" in results[1]["error"]
    assert "cannot connect" in results[2]["error"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "carrier-pigeon", "url": "https://example.com"}, "kind: must be one of"),
        ({"kind": "webhook"}, "url: is required"),
        ({"kind": "webhook", "url": "ftp://198.51.100.1/x"}, "url: scheme must be one of"),
        ({"kind": "webhook", "url": "http://user:pw@93.184.215.14/"}, "url: must not carry credentials"),
        ({"kind": "webhook", "url": "http://127.0.0.1:9/"}, "loopback"),
        ({"kind": "webhook", "url": "http://10.1.2.3/"}, "private"),
        ({"kind": "webhook", "url": "http://169.254.169.254/latest"}, "metadata"),
        ({"kind": "webhook", "url": "http://[::1]/"}, "loopback"),
        ({"kind": "webhook", "url": "http://[::ffff:192.168.1.1]/"}, "private"),
        ({"kind": "webhook", "url": "http://0.0.0.0/"}, "not a unicast"),
        ({"kind": "webhook", "url": "https://93.184.215.14/", "min_severity": 11}, "min_severity: must be an integer"),
        ({"kind": "webhook", "url": "https://93.184.215.14/", "surprise": 1}, "surprise: unknown field"),
        ({"kind": "webhook", "url": "https://93.184.215.14/", "headers": {"Host": "x"}}, "headers.Host: is reserved"),
        ({"kind": "pagerduty"}, "routing_key: is required"),
    ],
)
def test_invalid_specs_name_the_field(spec, message):
    with pytest.raises(ValueError, match=None) as info:
        build_output(spec)
    assert message in str(info.value)


def test_metadata_address_refused_even_when_private_allowed():
    with pytest.raises(ValueError, match="metadata"):
        build_output({"kind": "slack", "url": "http://169.254.169.254/"}, allow_private=True)


async def test_connect_time_guard_refuses_loopback_even_if_validation_was_skipped(receiver):
    """The guarded transport re-checks the address at connect time (DNS-rebinding defence)."""
    from agentwatch.net.ssrf import guarded_client

    _rec, base = receiver
    async with guarded_client(allow_private=False, timeout=2) as client:
        with pytest.raises(Exception, match="loopback"):
            await client.post(f"{base}/hook", content=b"{}")


def test_pagerduty_events_always_carry_a_summary_and_no_null_fields():
    """The Events API refuses an empty ``payload.summary`` and nulls in its typed fields: an
    alert without a title (a discovery or rule alert may have none) must still page."""
    out = build_output({"kind": "pagerduty", "url": "http://127.0.0.1:9/pd", "routing_key": "R"}, allow_private=True)
    untitled = {"id": "a-1", "severity": 9, "message": "ollama answered on 127.0.0.2:11434", "rule_id": "disc.new"}
    payload = out.event(untitled)["payload"]
    assert payload["summary"] == "ollama answered on 127.0.0.2:11434"
    assert None not in payload.values() and "timestamp" not in payload and "component" not in payload
    assert out.event({"id": "a-2", "rule_id": "disc.new"})["payload"]["summary"] == "disc.new"
    assert out.event({"id": "a-3"})["payload"]["summary"] == "agentwatch alert"
    titled = out.event({**untitled, "title": "New AI service", "created_at": "2026-12-05T20:00:00Z"})["payload"]
    assert titled["summary"] == "New AI service" and titled["timestamp"] == "2026-12-05T20:00:00Z"
