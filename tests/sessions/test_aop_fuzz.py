"""AOP events of every kind, in both payload dialects, with parts replaced, removed or added
(``tests.support.mutations``), posted one by one to a real server on both stores: each is
answered 200 or a 4xx naming the field, never a 5xx, and an accepted one is exported with
exactly the bytes it was sent as. Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sessions.aop import ev
from tests.support.mutations import encode, mutated
from tests.support.server import RunningServer

SEEDS = [
    ev("s", 1, "session.started", {"goal": "triage the inbox", "agent_version": "1.2"}),
    ev("s", 2, "cognition.thought", {"reasoning": "look at the oldest first", "confidence": "high"}),
    ev("s", 2, "cognition.goal", {"goal": "answer every mail"}),
    ev("s", 3, "cognition.thought", {"content": "older dialect", "confidence": 0.4}),
    ev("s", 4, "operation.tool_start", {"tool": "search", "tool_call_id": "c1", "input": {"q": "x"}}),
    ev("s", 5, "operation.tool_end", {"tool": "search", "tool_call_id": "c1", "success": True, "latency_ms": 12}),
    ev("s", 6, "operation.tool_end", {"tool": "search", "status": "error", "duration_ms": 3, "error": "boom"}),
    ev("s", 7, "cognition.decision", {"chosen": "continue", "alternatives": ["stop"]}),
    ev("s", 8, "cognition.decision", {"decision": "stop", "options": ["go"]}),
    ev("s", 9, "session.ended", {"outcome": "completed", "tokens": {"input": 10, "output": 5}, "cost_usd": 0.01}),
]
# Fields the store copies into indexed columns or session rows
HOT = [("agent_id",), ("parent_session_id",), ("type",), ("payload", "goal"), ("payload", "tool")]
_sessions = itertools.count()


@st.composite
def aop_events(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(mutated(SEEDS, HOT, frozenset({"session_id"})))
    doc["session_id"] = f"fuzz-{next(_sessions)}"
    return doc


@given(event=aop_events())
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_aop_events_are_stored_as_sent_or_refused_naming_the_field(
    open_server: RunningServer, event: dict[str, Any]
) -> None:
    raw = encode(event)
    with open_server.client() as c:
        r = c.post("/events", content=raw, headers={"content-type": "application/json"})
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            error = r.json()["error"]
            assert error["code"] == "INVALID_REQUEST" and error["details"][0]["field"], error
            return
        assert r.json()["ok"] is True
        export = c.get(f"/sessions/{quote(event['session_id'], safe='')}/export")
        assert export.status_code == 200, export.text
        assert export.content == raw + b"\n"
