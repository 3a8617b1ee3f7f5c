"""GET /api/v1/detections pages on a key that a new hit does not move: a client paging
while rules keep hitting sees every detection exactly once. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.server import RunningServer

DETECTIONS = "/api/v1/detections"


def at(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def report(c: Any, rule_id: str, key: str, seconds_ago: float) -> dict[str, Any]:
    body = {
        "rule_id": rule_id,
        "rule_title": "Paged rule",
        "severity": 5,
        "event_ids": [f"ev-{key}"],
        "dedup_key": key,
        "time": at(seconds_ago),
    }
    r = c.post(DETECTIONS, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["detection"]


def page(c: Any, rule_id: str, cursor: str | None) -> dict[str, Any]:
    params = {"rule_id": rule_id, "limit": 2, **({"cursor": cursor} if cursor else {})}
    r = c.get(DETECTIONS, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_new_hits_while_paging_neither_skip_nor_repeat_a_detection(srv: RunningServer) -> None:
    rule_id = f"EXT-PAGE-{uuid.uuid4().hex[:8]}"
    with srv.client() as c:
        keys = [f"k{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
        made = [report(c, rule_id, key, 200 - 30 * i) for i, key in enumerate(keys)]  # oldest first
        assert len({d["id"] for d in made}) == 5
        first = page(c, rule_id, None)
        seen = [d["id"] for d in first["detections"]]
        assert len(seen) == 2 and first["next_cursor"]
        # rules hit again meanwhile: the oldest, not yet seen, and one already seen move to the top
        again = report(c, rule_id, keys[0], 10)
        assert again["id"] == made[0]["id"] and again["count"] == 2
        again = report(c, rule_id, keys[4], 5)
        assert again["id"] == made[4]["id"] and again["count"] == 2
        cursor = first["next_cursor"]
        for _ in range(5):
            nxt = page(c, rule_id, cursor)
            seen += [d["id"] for d in nxt["detections"]]
            cursor = nxt["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(d["id"] for d in made)  # each once
        assert len(seen) == len(set(seen)) == 5
