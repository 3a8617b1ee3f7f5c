"""Redaction modes (checked in the database itself), the inline guard, and the SSRF refusal of upstreams."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from agentwatch.capture.redact import Redactor, mask, mask_json, scan
from tests.capture.conftest import gateway_settings, wait_events
from tests.capture.fake_upstream import OPENAI_CHAT
from tests.support.server import run_server

SECRET = "AKIAIOSFODNN7EXAMPLE"
OPENAI_SECRET = "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
PROMPT = f"deploy with key {SECRET} and mail ops@example.com"


def stored_text(srv) -> str:
    """Everything the events table holds, as text (whatever its columns)."""
    with srv.aw.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM events")).fetchall()
    return "\n".join(str(tuple(r)) for r in rows)


def chat(c, content: str, model: str = "gpt-4o"):
    return c.post(
        "/gateway/openai/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {OPENAI_SECRET}"},
    )


def test_scan_and_mask_find_secrets_and_pii():
    found = {m.type for m in scan(PROMPT + " card 4111 1111 1111 1111, not a card 4111 1111 1111 1112")}
    assert found == {"aws_access_key_id", "email", "credit_card"}
    assert mask(PROMPT) == "deploy with key [REDACTED:aws_access_key_id] and mail [REDACTED:email]"
    red = Redactor("safe")
    out = red.text("nothing to see")
    assert out == "nothing to see"
    out = red.text(PROMPT)
    assert out["$redacted"]["reason"] == "secret_detected"
    assert SECRET not in orjson.dumps(out).decode()
    assert red.report.secrets == ["aws_access_key_id"] and red.report.pii == ["email"]
    minimal = Redactor("minimal").text("hello")
    assert set(minimal["$redacted"]) == {"reason", "original_length", "hash", "redaction_profile"}


def test_secrets_used_as_object_keys_are_masked_too():
    # tool arguments may carry a secret as a key ({"AKIA...": "prod"}); every mode but full masks it
    args = {SECRET: "prod", SECRET[:-1] + "F": {"region": "eu"}, "note": "none"}
    for mode in ("safe", "minimal"):
        red = Redactor(mode)
        out = red.value(args)
        assert SECRET not in orjson.dumps(out).decode() and SECRET[:-1] + "F" not in orjson.dumps(out).decode()
        assert list(out)[:2] == ["[REDACTED:aws_access_key_id]", "[REDACTED:aws_access_key_id]#2"]  # none lost
        assert red.report.secrets == ["aws_access_key_id"]
    assert Redactor("full").value(args) == args
    masked, count = mask_json({"tool": {"arguments": args}})
    assert count == 2 and list(masked["tool"]["arguments"]) == [
        "[REDACTED:aws_access_key_id]",
        "[REDACTED:aws_access_key_id]#2",
        "note",
    ]


def test_safe_mode_keeps_secrets_out_of_the_store(settings, upstream):
    with run_server(gateway_settings(settings, upstream, redaction="safe")) as srv, srv.client() as c:
        assert chat(c, PROMPT).content == OPENAI_CHAT
        # the upstream got the prompt as sent: redaction is about what agentwatch keeps
        assert SECRET in upstream.requests[-1]["body"].decode()
        req = wait_events(c, "ai.request", 1)[0]
        content = req["data"]["messages"][0]["content"]["$redacted"]
        assert content["reason"] == "secret_detected"
        assert content["findings"] == [{"type": "aws_access_key_id", "count": 1}, {"type": "email", "count": 1}]
        assert content["preview"].startswith("deploy with key [REDACTED:aws_access_key_id]")
        assert req["confidence"]["redaction_applied"] is True
        wait_events(c, "ai.response", 1)
        stored = stored_text(srv)
        assert SECRET not in stored and "ops@example.com" not in stored and OPENAI_SECRET not in stored
        assert "[REDACTED:aws_access_key_id]" in stored


def test_full_mode_stores_content_and_minimal_mode_stores_none(settings, upstream):
    with run_server(gateway_settings(settings, upstream, redaction="full")) as srv, srv.client() as c:
        chat(c, PROMPT)
        req = wait_events(c, "ai.request", 1)[0]
        assert req["data"]["messages"][0]["content"] == PROMPT
        assert OPENAI_SECRET not in stored_text(srv)  # the provider key is never stored, in any mode
    with run_server(gateway_settings(settings, upstream, redaction="minimal")) as srv, srv.client() as c:
        chat(c, "a harmless question about tea")
        req = wait_events(c, "ai.request", 2)  # same database: the full-mode event is still there
        minimal = next(r for r in req if r["confidence"].get("redaction_profile") == "minimal")
        red = minimal["data"]["messages"][0]["content"]["$redacted"]
        assert red["original_length"] == len("a harmless question about tea") and "preview" not in red
        assert "harmless" not in stored_text(srv)


def alerts_rows(srv) -> list[dict]:
    with srv.aw.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM alerts")).mappings().fetchall()
    return [dict(r) for r in rows]


def wait_alerts(srv, rule: str, timeout: float = 15.0) -> list[dict]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in alerts_rows(srv) if rule in str(r)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_enforce_blocks_secrets_with_provider_shaped_errors_and_alerts(settings, upstream):
    capture = {"guard": {"mode": "enforce"}}
    with run_server(gateway_settings(settings, upstream, **capture)) as srv, srv.client() as c:
        before = len(upstream.requests)
        r = chat(c, PROMPT)
        assert r.status_code == 403
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "blocked_by_policy"
        assert "guard.secret_in_prompt" in err["message"]
        a = c.post(
            "/gateway/anthropic/v1/messages",
            json={
                "model": "claude-3-5-sonnet-20241022",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": PROMPT}],
            },
        )
        assert a.status_code == 403
        assert a.json()["type"] == "error" and a.json()["error"]["type"] == "permission_error"
        assert len(upstream.requests) == before  # nothing was forwarded
        # a clean request still passes
        assert chat(c, "hello").content == OPENAI_CHAT
        blocked = wait_events(c, "ai.response", 3)
        blocks = [e for e in blocked if e["data"]["status_code"] == 403]
        assert len(blocks) == 2 and all(e["attrs"]["guard"]["action"] == "block" for e in blocks)
        assert all(e["data"]["success"] is False for e in blocks)
        alerts = wait_alerts(srv, "guard.blocked")
        assert alerts, "a block is an alert"
        assert SECRET not in stored_text(srv)


def test_enforce_redact_action_and_unapproved_model(settings, upstream):
    capture = {"guard": {"mode": "enforce", "enforce_action": "redact", "approved_models": ["gpt-4o*"]}}
    with run_server(gateway_settings(settings, upstream, **capture)) as srv, srv.client() as c:
        r = chat(c, PROMPT)
        assert r.status_code == 200 and r.content == OPENAI_CHAT
        forwarded = orjson.loads(upstream.requests[-1]["body"])
        assert (
            forwarded["messages"][0]["content"]
            == "deploy with key [REDACTED:aws_access_key_id] and mail ops@example.com"
        )
        other = chat(c, "hello", model="gpt-3.5-turbo")
        assert other.status_code == 403 and "guard.unapproved_model" in other.json()["error"]["message"]
        assert wait_alerts(srv, "guard.unapproved_model")


def test_monitor_mode_forwards_and_alerts(settings, upstream):
    with run_server(gateway_settings(settings, upstream, guard={"mode": "monitor"})) as srv, srv.client() as c:
        assert chat(c, PROMPT).status_code == 200
        assert SECRET in upstream.requests[-1]["body"].decode()
        assert wait_alerts(srv, "guard.secret_in_prompt")


@pytest.mark.parametrize(
    ("base_url", "allow", "rule"),
    [
        (None, {}, "loopback address"),  # the fake upstream itself, loopback not allowed
        ("http://169.254.169.254", {"allow_loopback_upstreams": True, "allow_private_upstreams": True}, "metadata"),
        ("http://10.1.2.3:8000", {"allow_loopback_upstreams": True}, "not a public address"),
        ("http://localhost:11434", {}, "localhost is a loopback address"),
    ],
)
def test_ssrf_guard_refuses_upstreams_not_allowed(tmp_path, upstream, base_url, allow, rule):
    from agentwatch.config import Settings

    routes = {"openai": {"provider": "openai", "base_url": base_url or upstream.url}}
    settings = Settings(data_dir=tmp_path, auth={"enabled": False}, capture={"routes": routes, **allow})
    with run_server(settings) as srv, srv.client() as c:
        r = chat(c, "hello")
        assert r.status_code == 403
        assert rule in r.json()["error"]["message"]
        assert upstream.requests == []
