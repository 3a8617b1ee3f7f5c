"""The inline guard fails closed: in enforce mode nothing it has not read whole goes upstream.

A secret is looked for in the whole request body (not only in the message text the provider
parser extracts), down to 64 levels of nested arrays and objects. A body nested deeper, or one
the guard cannot read as JSON although it looks like JSON (a depth orjson refuses, a lone
surrogate escape, a compressed body), is refused as ``guard.uninspectable_request`` and recorded
like any other block. Every assertion about leaks is on what the fake provider received.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.capture.conftest import gateway_settings, wait_events
from tests.capture.fake_upstream import OPENAI_CHAT, FakeUpstream
from tests.capture.test_redact_guard import stored_text, wait_alerts
from tests.support.server import free_port, run_server, serve_asgi

SECRET = "AKIAIOSFODNN7EXAMPLE"  # aws_access_key_id
DEEP_SECRET = "ghp_" + "Q" * 36  # github_token, the one placed deep
CHAT = "/gateway/openai/v1/chat/completions"
REDACT = {"guard": {"mode": "enforce", "enforce_action": "redact"}}
BLOCK = {"guard": {"mode": "enforce"}}
UNINSPECTABLE = "guard.uninspectable_request"
SECRET_RULE = "guard.secret_in_prompt"


def nest(levels: int, leaf: Any) -> Any:
    """``leaf`` inside ``levels`` arrays."""
    for _ in range(levels):
        leaf = [leaf]
    return leaf


def deep_body(levels: int, leaf: Any = DEEP_SECRET, prompt: str = f"deploy with key {SECRET}") -> dict[str, Any]:
    """A chat request whose ``metadata`` makes the body ``levels`` levels deep (the root object is level 1)."""
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": prompt}],
        "metadata": nest(levels - 1, leaf),
    }


def forwarded(upstream: FakeUpstream) -> bytes:
    return b"\n".join(r["body"] for r in upstream.requests)


def assert_refused(r: httpx.Response, rule: str) -> None:
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "blocked_by_policy" and rule in err["message"]


def blocked_responses(c: httpx.Client, count: int) -> list[dict[str, Any]]:
    events = wait_events(c, "ai.response", count)
    return [e for e in events if e["data"]["status_code"] == 403]


# -- redact: what the walk cannot reach is refused, not forwarded ------------------------------


@pytest.mark.parametrize("levels", [70, 300])
def test_redact_refuses_a_body_nested_deeper_than_it_masks(settings, upstream, levels):
    # 70: the old walker stopped at 64 and forwarded the deeper secret as sent; 300: orjson
    # cannot even write the masked body back (a 500 before)
    with run_server(gateway_settings(settings, upstream, **REDACT)) as srv, srv.client() as c:
        r = c.post(CHAT, json=deep_body(levels))
        assert DEEP_SECRET.encode() not in forwarded(upstream) and SECRET.encode() not in forwarded(upstream)
        assert upstream.requests == []
        assert_refused(r, UNINSPECTABLE)
        assert "deeper than 64 levels" in r.json()["error"]["message"]
        # recorded as a block: the 403 answer, the verdict, a guard.blocked alert naming the rule
        (blocked,) = blocked_responses(c, 1)
        assert blocked["attrs"]["guard"]["action"] == "block"
        assert UNINSPECTABLE in blocked["attrs"]["guard"]["rules"]
        alerts = wait_alerts(srv, "guard.blocked")
        assert alerts and UNINSPECTABLE in str(alerts)
        assert DEEP_SECRET not in stored_text(srv) and SECRET not in stored_text(srv)


def test_redact_masks_down_to_64_levels_and_refuses_the_65th(settings, upstream):
    with run_server(gateway_settings(settings, upstream, **REDACT)) as srv, srv.client() as c:
        r = c.post(CHAT, json=deep_body(64))
        assert r.status_code == 200 and r.content == OPENAI_CHAT
        sent = orjson.loads(upstream.requests[-1]["body"])
        assert sent["messages"][0]["content"] == "deploy with key [REDACTED:aws_access_key_id]"
        assert sent["metadata"] == nest(63, "[REDACTED:github_token]")  # the innermost string, masked
        assert_refused(c.post(CHAT, json=deep_body(65)), UNINSPECTABLE)
        assert len(upstream.requests) == 1
        # the limit is about nesting, not about secrets: a clean body one level too deep is refused too
        assert_refused(c.post(CHAT, json=deep_body(65, "nothing here", "hello")), UNINSPECTABLE)
        assert len(upstream.requests) == 1


def test_redact_masks_secrets_outside_the_message_text(settings, upstream):
    # a tool call's arguments sent back in the history, and a metadata key, are not message text
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "hello"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "shell", "arguments": f'{{"cmd": "aws --key {SECRET}"}}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        "metadata": {DEEP_SECRET: "x"},
    }
    with run_server(gateway_settings(settings, upstream, **REDACT)) as srv, srv.client() as c:
        r = c.post(CHAT, json=body)
        assert r.status_code == 200 and r.content == OPENAI_CHAT
        raw = forwarded(upstream)
        assert SECRET.encode() not in raw and DEEP_SECRET.encode() not in raw
        sent = orjson.loads(upstream.requests[-1]["body"])
        args = sent["messages"][1]["tool_calls"][0]["function"]["arguments"]
        assert args == '{"cmd": "aws --key [REDACTED:aws_access_key_id]"}'
        assert sent["metadata"] == {"[REDACTED:github_token]": "x"}
        assert sent["messages"][0]["content"] == "hello"  # the rest as sent
        req = wait_events(c, "ai.request", 1)[0]
        assert "secrets_masked_before_forwarding" in req["confidence"]["reasons"]
        assert req["attrs"]["guard"]["action"] == "redact"


def test_inline_media_is_not_read_as_text_but_a_key_beside_it_is(settings, upstream):
    """Base64 media is not scanned (scanning 2 MiB of it takes half a second, and random base64
    sometimes takes a key's shape); a key in a short value, or in text next to the media, still blocks."""
    media = base64.b64encode(bytes(range(256)) * 16).decode()  # 5,464 characters of base64
    lookalike = media[:1000] + "+AIza" + "B" * 35 + "/" + media[1041:]  # a Google API key's shape inside it
    openai_image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + lookalike}}
    anthropic_image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": lookalike}}
    clean = {"model": "gpt-4o", "messages": [{"role": "user", "content": [openai_image, anthropic_image]}]}
    leaky = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [openai_image, {"type": "text", "text": f"key {SECRET}"}]}],
    }
    short = {"model": "gpt-4o", "metadata": {"media_type": "text/plain", "data": SECRET}, "messages": []}
    with run_server(gateway_settings(settings, upstream, **BLOCK)) as srv, srv.client() as c:
        r = c.post(CHAT, json=clean)
        assert r.status_code == 200, r.text
        assert lookalike.encode() in forwarded(upstream)
        assert_refused(c.post(CHAT, json=leaky), SECRET_RULE)
        assert_refused(c.post(CHAT, json=short), SECRET_RULE)
        assert len(upstream.requests) == 1


# -- block: nesting and placement do not hide a secret ------------------------------------------


def nested_blocks(levels: int, text: str) -> list[dict[str, Any]]:
    """Message content as ``levels`` content blocks, each inside the previous one's ``content``."""
    block: dict[str, Any] = {"type": "text", "text": text}
    for _ in range(levels):
        block = {"type": "text", "content": [block]}
    return [block]


def test_block_mode_cannot_be_evaded_by_nesting_or_placement(settings, upstream):
    tool_history = [
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": f'{{"k": "{SECRET}"}}'}}
            ],
        },
    ]
    cases = [
        # content blocks 40 deep: below what the message text parser follows (32), and 85 JSON levels
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": nested_blocks(40, SECRET)}]}, UNINSPECTABLE),
        (deep_body(70, prompt="hello"), UNINSPECTABLE),
        ({"model": "gpt-4o", "messages": tool_history}, SECRET_RULE),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "user": SECRET}, SECRET_RULE),
    ]
    with run_server(gateway_settings(settings, upstream, **BLOCK)) as srv, srv.client() as c:
        for body, rule in cases:
            r = c.post(CHAT, json=body)
            assert SECRET.encode() not in forwarded(upstream), rule
            assert_refused(r, rule)
        assert upstream.requests == []
        # what the guard can read whole, and is clean, still goes through (20 blocks deep: 45 levels)
        ok = c.post(CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": nested_blocks(20, "hi")}]})
        assert ok.status_code == 200 and len(upstream.requests) == 1
        blocks = blocked_responses(c, len(cases) + 1)
        assert len(blocks) == len(cases) and all(b["attrs"]["guard"]["action"] == "block" for b in blocks)
        assert SECRET not in stored_text(srv)


# -- bodies orjson does not read, or the guard did not try to ---------------------------------


@contextmanager
def raw_upstream() -> Iterator[FakeUpstream]:
    """A provider that keeps each body as it came, unparsed (some bodies here are JSON orjson refuses)."""
    port = free_port("127.0.0.2")
    fake = FakeUpstream(f"http://127.0.0.2:{port}")

    async def handler(request: Request) -> Response:
        fake.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": await request.body()})
        return Response(OPENAI_CHAT, media_type="application/json")

    with serve_asgi(Starlette(routes=[Route("/{path:path}", handler, methods=["POST"])]), "127.0.0.2", port):
        yield fake


PLAIN = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": f"key {SECRET}"}]})
JSON_HEADERS = {"content-type": "application/json"}


def test_enforce_reads_json_after_whitespace_or_a_bom_and_refuses_json_it_cannot_read(settings):
    # each of these is JSON a provider may accept (Python's json reads all but the compressed one, which
    # the provider's server may decompress), and each used to be forwarded without being looked at
    too_deep = (
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": '
        + b"[" * 1100
        + f'"{SECRET}"'.encode()
        + b"]" * 1100
        + b"}"
    )
    surrogate = f'{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "\\ud800 {SECRET}"}}]}}'.encode()
    # the last copy of a repeated key is clean, and is what a parser keeps; the first still goes upstream
    repeated = (
        f'{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "key {SECRET}"}}],'
        ' "messages": [{"role": "user", "content": "hi"}]}'
    ).encode()
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (b" \r\n\t" + PLAIN, JSON_HEADERS, SECRET_RULE),
        (b"\xef\xbb\xbf" + PLAIN, JSON_HEADERS, SECRET_RULE),
        (too_deep, JSON_HEADERS, UNINSPECTABLE),
        (surrogate, JSON_HEADERS, UNINSPECTABLE),
        (gzip.compress(PLAIN), {**JSON_HEADERS, "content-encoding": "gzip"}, UNINSPECTABLE),
        (repeated, JSON_HEADERS, UNINSPECTABLE),
    ]
    with raw_upstream() as upstream:
        with run_server(gateway_settings(settings, upstream, **BLOCK)) as srv, srv.client() as c:
            for body, headers, rule in cases:
                r = c.post(CHAT, content=body, headers=headers)
                assert upstream.requests == [], rule
                assert_refused(r, rule)
            blocks = blocked_responses(c, len(cases))
            assert len(blocks) == len(cases)
            assert SECRET not in stored_text(srv)
        with run_server(gateway_settings(settings, upstream, **REDACT)) as srv, srv.client() as c:
            r = c.post(CHAT, content=b"\n" + PLAIN, headers=JSON_HEADERS)
            assert r.status_code == 200 and r.content == OPENAI_CHAT
            sent = orjson.loads(upstream.requests[-1]["body"])
            assert sent["messages"][0]["content"] == "key [REDACTED:aws_access_key_id]"
            for body, headers, _rule in cases[2:]:
                assert_refused(c.post(CHAT, content=body, headers=headers), UNINSPECTABLE)
            assert len(upstream.requests) == 1 and SECRET.encode() not in forwarded(upstream)
