"""A hunt run counts the events its query selects once, on its first page, not again on every
page of 1,000 events it reads (a COUNT over the whole selection each time). SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, event

from agentwatch.events.model import Event
from agentwatch.hunts import runner
from agentwatch.hunts.definition import Hunt, parse
from agentwatch.hunts.settings import HuntSettings
from agentwatch.store.events import commit_batch
from tests.hunts.helpers import definition


def _events(tag: str, count: int, ts: float) -> list[Event]:
    return [
        Event(
            body={"event_type": "agent.tool_call", "data": {"note": f"needle-{tag}"}},
            event_id=f"{tag}-{i}",
            event_type="agent.tool_call",
            ts=ts + i,
            received_at=time.time(),
        )
        for i in range(count)
    ]


def test_a_run_of_three_pages_counts_its_selection_once(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:8]
    commit_batch(engine, _events(tag, 2_100, time.time() - 7_200))  # pages of 1,000, 1,000 and 100
    got = parse("pages.yml", definition("pages", body=f"query: {{q: needle-{tag}}}\n").encode(), 60)
    assert isinstance(got, Hunt)
    counts: list[str] = []
    pages: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = " ".join(statement.lower().split())
        if "from events" in text and "count(" in text:
            counts.append(text)
        elif "from events" in text:
            pages.append(text)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        done, _ = runner.execute(engine, got, HuntSettings(max_scan=5_000), "manual")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert (done.status, done.query_total, done.scanned, done.matched) == ("ok", 2_100, 2_100, 2_100)
    assert done.body["truncated"] is False
    assert len(pages) == 3
    assert len(counts) == 1, counts
