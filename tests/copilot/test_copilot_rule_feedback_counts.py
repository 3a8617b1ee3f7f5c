"""A rule's true/false-positive counts are counted in the store: with thousands of labels on its
alerts the counts are right (each alert by its newest verdict) and what the store is asked for
is an aggregate (one row per verdict), not every label. Real server, SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import event

from agentwatch.detect.schema import alert_feedback
from tests.copilot.seed import alert, context, of_kind, unique
from tests.copilot.test_copilot_rule_playbook import _rule
from tests.support.server import RunningServer

ALERTS = 40
LABELS_PER_ALERT = 100


def _labels(alert_ids: list[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Many labels on each alert, the verdict flipping; (rows, the expected newest counts)."""
    base = time.time() - 10_000
    rows, newest = [], {"tp": 0, "fp": 0}
    for n, alert_id in enumerate(alert_ids):
        last = "tp" if n % 3 else "fp"  # 14 of the 40 end false positive
        for i in range(LABELS_PER_ALERT):
            verdict = last if i == LABELS_PER_ALERT - 1 else ("fp" if (i + n) % 2 else "tp")
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "alert_id": alert_id,
                    "feedback": verdict,
                    "note": "",
                    "origin": "api",
                    "principal": "t",
                    "created_at": base + i,
                }
            )
        newest[last] += 1
    return rows, newest


class Statements:
    """The SQL the server's engine runs meanwhile (a listener on the real engine)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.seen = engine, []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self)


def _tie(engine: Any, alert_id: str, at: float) -> str:
    """Two labels at the same moment (the greater id is the newer, as the alert's labels list);
    the verdict that counts."""
    low, high = sorted(str(uuid.uuid4()) for _ in range(2))
    with engine.begin() as conn:
        for fid, verdict in ((low, "tp"), (high, "fp")):
            conn.execute(
                alert_feedback.insert().values(
                    id=fid, alert_id=alert_id, feedback=verdict, note="", origin="api", principal="t", created_at=at
                )
            )
    return "fp"


def test_many_labels_are_counted_right_by_an_aggregate(open_server: RunningServer) -> None:
    engine = open_server.aw.engine
    with open_server.client() as c:
        rule_id = _rule(c)
        ids = [alert(engine, ("host", unique()), rule_id=rule_id)["id"] for _ in range(ALERTS)]
        rows, expected = _labels(ids)
        with engine.begin() as conn:
            conn.execute(alert_feedback.insert(), rows)
        tied = alert(engine, ("host", unique()), rule_id=rule_id)["id"]
        expected[_tie(engine, tied, time.time())] += 1
        other = alert(engine, ("host", unique()))  # another rule's label is not counted
        assert c.post(f"/api/v1/alerts/{other['id']}/feedback", json={"feedback": "tp"}).status_code == 204
        with Statements(engine) as seen:
            doc = context(c, "rule", rule_id)
    (labels,) = of_kind(doc, "rule_feedback")
    labelled = expected["tp"] + expected["fp"]
    assert labels["data"] == {**expected, "fp_ratio": round(expected["fp"] / labelled, 3)}
    assert expected == {"tp": 26, "fp": 15}  # the sums the data above is meant to give
    reads = [s for s in seen.seen if "alert_feedback" in s]
    assert reads, "the rule's labels were not read"
    for sql in reads:  # counted in the store, not every label brought back
        assert "GROUP BY" in sql.upper() and "COUNT(" in sql.upper(), sql
