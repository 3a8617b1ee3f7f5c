"""The OISP spec examples with parts replaced, removed or added (``tests.support.mutations``),
posted in batches to a real server on both stores: every event is accepted or refused with
its index, field and reason, never a 5xx, and what was accepted reads back as sent.
Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentwatch.config import Settings
from tests.conftest import OISP_EXAMPLES
from tests.support.mutations import encode, first_difference, mutated
from tests.support.server import RunningServer, run_server

SEEDS = [json.loads(p.read_text()) for p in sorted(OISP_EXAMPLES.glob("*.json"))]
# Fields the store copies into indexed columns
INDEXED = [("host", "hostname"), ("process", "name"), ("process", "exe"), ("agent",), ("data", "model", "id")]
_ids = itertools.count()


@st.composite
def oisp_events(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(mutated(SEEDS, INDEXED, frozenset({"event_id"})))
    doc["event_id"] = f"fuzz-{next(_ids)}"
    return doc


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[RunningServer]:
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("ingest-fuzz"),
        database_url=module_database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as srv:
        yield srv


@given(batch=st.lists(oisp_events(), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_events_are_stored_as_sent_or_refused_with_a_reason(
    fuzz_server: RunningServer, batch: list[dict[str, Any]]
) -> None:
    body = b"\n".join(encode(e) for e in batch)
    with fuzz_server.client() as c:
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
