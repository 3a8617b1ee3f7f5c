"""The token bound holds whatever usage the backend reports: a total of 0 beside large prompt and
completion counts, or no usage at all, still counts the tokens spent (the larger of the total
and the parts; an estimate from the bytes when nothing is reported). Real server (SQLite and
PostgreSQL) against a fake LLM on loopback."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tests.investigations.support import BOUNDS, all_entries, calls, new_case, seed, start, wait_done
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer


def _always(fake: FakeLlm, message: dict[str, Any], usage: dict[str, Any] | None) -> None:
    """The fake answers ``message`` every time, reporting ``usage`` (None: no usage at all)."""
    fake.reset()

    def reply(_f: FakeLlm, body: dict[str, Any]) -> Response:
        doc: dict[str, Any] = {
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        }
        if usage is not None:
            doc["usage"] = usage
        return Response(orjson.dumps(doc), media_type="application/json")

    fake.reply = reply


def test_a_total_of_zero_beside_large_parts_still_meets_the_token_bound(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    usage = {"prompt_tokens": 2_800, "completion_tokens": 200, "total_tokens": 0}
    _always(fake, calls(("get_alert", {"alert_id": seeded["alert_id"]})), usage)
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "failed" and doc["error"].startswith("investigations.max_tokens:"), doc
    assert len(fake.sent) == 2  # 3,000 then 6,000 of 5,000: stopped before max_steps (4)
    assert doc["tokens"] == 6_000
    answers = [
        c.get(f"/api/v1/investigations/{e['id']}").json()["payload"]
        for e in all_entries(c, case_id, doc["id"])
        if e["kind"] == "llm_response"
    ]
    assert [a["tokens"] for a in answers] == [3_000, 3_000]
    assert answers[0]["usage"] == usage  # what the backend said is kept as it said it


def test_an_answer_reporting_no_usage_is_counted_from_its_size(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    for usage in (None, {"total_tokens": 0}):
        _always(fake, calls(("get_alert", {"alert_id": seeded["alert_id"]})), usage)
        doc = wait_done(c, start(c, case_id))  # two of the case: as many as BOUNDS allow
        assert doc["status"] == "failed", doc
        sent = sum(len(orjson.dumps(b["messages"])) for b in fake.got)
        assert doc["tokens"] >= sent // 4, (usage, doc["tokens"], sent)  # never 0: each step estimated
        assert doc["steps"] == len(fake.sent) <= BOUNDS["max_steps"]
