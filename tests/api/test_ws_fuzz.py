"""Control frames of the two live WebSockets with parts replaced, removed or added
(``tests.support.mutations``), sent over one connection each: every frame is answered with
an acknowledgement or an error frame, and the connection stays open and serving.
Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from websockets.sync.client import ClientConnection, connect

from tests.support.mutations import encode, mutated
from tests.support.server import RunningServer

SUBSCRIBE = {"type": "subscribe", "filter": {"event_types": ["ai.request", "process.*"]}}
FILTER = {"type": "filter", "min_severity": 8, "source": ["agent"], "entity": "h1"}


@pytest.fixture(scope="module")
def oisp_ws(open_server: RunningServer) -> Iterator[ClientConnection]:
    with connect(open_server.ws_url + "/ws/events", ping_interval=None) as ws:
        yield ws


@pytest.fixture(scope="module")
def v1_ws(open_server: RunningServer) -> Iterator[ClientConnection]:
    with connect(open_server.ws_url + "/api/v1/ws", ping_interval=None) as ws:
        yield ws


def _answer(ws: ClientConnection, frame: bytes, answers: set[str]) -> dict[str, Any]:
    """Send ``frame``; the first frame back that is not a periodic status frame."""
    ws.send(frame.decode())
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg.get("type") != "status":
            assert msg.get("type") in answers, msg
            if msg["type"] == "error":
                assert msg["error"]["code"] and msg["error"]["message"], msg
            return msg


@given(doc=mutated([SUBSCRIBE], [("filter", "event_types", 0)], frozenset()))
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_subscribe_frames_are_acknowledged_or_refused(oisp_ws: ClientConnection, doc: dict) -> None:
    _answer(oisp_ws, encode(doc), {"subscribed", "error"})


@given(doc=mutated([FILTER], [("entity",), ("source", 0)], frozenset()))
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_filter_frames_are_acknowledged_or_refused(v1_ws: ClientConnection, doc: dict) -> None:
    _answer(v1_ws, encode(doc), {"filter_ack", "error"})
