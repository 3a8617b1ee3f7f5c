"""The OISP spec examples with parts replaced, removed or added (``tests.support.mutations``),
posted in batches to a real server on both stores: every event is accepted or refused with
its index, field and reason, never a 5xx, and what was accepted reads back as sent.
Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import OISP_EXAMPLES
from tests.support.mutations import encode, first_difference, mutated
from tests.support.server import RunningServer

SEEDS = [json.loads(p.read_text()) for p in sorted(OISP_EXAMPLES.glob("*.json"))]
# Fields the store copies into indexed columns
INDEXED = [("host", "hostname"), ("process", "name"), ("process", "exe"), ("agent",), ("data", "model", "id")]
_ids = itertools.count()


@st.composite
def oisp_events(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(mutated(SEEDS, INDEXED, frozenset({"event_id"})))
    doc["event_id"] = f"fuzz-{next(_ids)}"
    return doc


@given(batch=st.lists(oisp_events(), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_events_are_stored_as_sent_or_refused_with_a_reason(
    open_server: RunningServer, batch: list[dict[str, Any]]
) -> None:
    body = b"\n".join(encode(e) for e in batch)
    with open_server.client() as c:
        r = c.post("/api/v1/ingest", content=body, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["accepted"] + out["rejected"] == len(batch), out
        assert all(err["field"] and err["reason"] for err in out["errors"]), out
        refused = {err["index"] for err in out["errors"]}
        for i, event in enumerate(batch):
            if i in refused:
                continue
            got = c.get(f"/api/events/{event['event_id']}")
            assert got.status_code == 200, (event, got.text)
            assert first_difference(got.json(), event) is None, first_difference(got.json(), event)
