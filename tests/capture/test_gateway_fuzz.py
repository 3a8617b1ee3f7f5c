"""LLM API requests with parts replaced, removed or added (``tests.support.mutations``),
sent through the gateway to a fake provider on loopback, on both stores: each is relayed
(the provider's answer comes back whole) and recorded without a dropped event, whatever
field holds whatever value. Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.capture.conftest import gateway_settings
from tests.capture.fake_upstream import ANTHROPIC as ANTHROPIC_ANSWER
from tests.capture.fake_upstream import OPENAI_CHAT, fake_upstream
from tests.capture.test_gateway_bad_bodies import settled
from tests.support.mutations import encode, mutated
from tests.support.server import RunningServer, open_settings, run_server

OPENAI_REQUESTS = [
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
    {
        "model": "gpt-4o",
        "max_tokens": 64,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "read /etc/hosts"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "127.0.0.1 localhost"},
        ],
        "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}],
    },
]
ANTHROPIC_REQUESTS = [
    {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 64,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {"c": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a b"}]},
        ],
    }
]
CALLS = st.sampled_from(
    [
        ("/gateway/openai/v1/chat/completions", OPENAI_REQUESTS, OPENAI_CHAT),
        ("/gateway/anthropic/v1/messages", ANTHROPIC_REQUESTS, ANTHROPIC_ANSWER),
    ]
)
HOT = [("model",), ("messages", 0, "content"), ("messages", 0, "role"), ("stream",)]


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[RunningServer]:
    base = open_settings(tmp_path_factory.mktemp("gateway-fuzz"), module_database_url)
    with fake_upstream("127.0.0.23") as upstream, run_server(gateway_settings(base, upstream)) as srv:
        yield srv


@given(call=CALLS, data=st.data())
@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_requests_are_relayed_and_recorded_without_a_drop(
    gateway_server: RunningServer, call: tuple[str, list[dict], bytes], data: Any
) -> None:
    path, seeds, canned = call
    body = data.draw(mutated(seeds, HOT, frozenset()))
    with gateway_server.client() as c:
        r = c.post(path, content=encode(body), headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        if body.get("stream") is not True:
            assert r.content == canned
        health = settled(c)
        assert health["events_dropped"] == 0, health
