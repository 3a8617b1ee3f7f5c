"""The OISP spec examples, each with one part replaced by generated JSON, posted to a real
server on both stores: every event is accepted or refused with its index and a reason,
never a 5xx, and what was accepted reads back as sent.

The replacement may be text with control characters or NUL, an integer past 64 bits (read
back as the nearest float), a deep structure, a removed field or an unknown one: all things
a sensor or an attacker can send. Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentwatch.config import Settings
from tests.conftest import OISP_EXAMPLES
from tests.support.server import RunningServer, run_server

SEEDS = [json.loads(p.read_text()) for p in sorted(OISP_EXAMPLES.glob("*.json"))]
_ids = itertools.count()

# Characters that have broken stores, parsers and logs, mixed into any character
AWKWARD = "\x00\x01\x1f\x7f\n\r\t\u2028\ufeff\ufffd\U0001f600'\"\\%_"
plain = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
awkward = st.text(alphabet=st.sampled_from(AWKWARD), min_size=1, max_size=6)
text = plain | awkward | st.builds(str.__add__, plain, awkward)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in ``doc`` a value sits (not the event_id: each example gets a fresh one)."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if prefix == () and k == "event_id":
                continue
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


# Fields the store copies into indexed columns, drawn as often as all the others together
INDEXED = [("host", "hostname"), ("process", "name"), ("process", "exe"), ("agent",), ("data", "model", "id")]


def _mutate(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    path = draw(st.sampled_from(_paths(doc)) | st.sampled_from(INDEXED))
    parent: Any = doc
    for step in path[:-1]:
        parent = parent.get(step) if isinstance(parent, dict) else parent[step]
        if not isinstance(parent, dict | list):
            return
    action = draw(st.sampled_from(["text", "replace", "remove", "add"]))
    if action == "text":
        parent[path[-1]] = draw(text)
    elif action == "remove" and isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif action == "add" and isinstance(parent, dict):
        parent[draw(text)] = draw(values)
    else:
        parent[path[-1]] = draw(values)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A spec example with one to four of its parts replaced, removed or added to."""
    doc = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if _paths(doc):
            _mutate(draw, doc)
    doc["event_id"] = f"fuzz-{next(_ids)}"
    return doc


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[RunningServer]:
    data_dir: Path = tmp_path_factory.mktemp("ingest-fuzz")
    cfg = Settings(
        data_dir=data_dir,
        database_url=module_database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as srv:
        yield srv


def _first_difference(got: Any, sent: Any, path: str = "") -> str | None:
    """Where ``got`` fails to hold what ``sent`` holds (the server may add envelope fields)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return f"{path or '.'}: {got!r} is not an object"
        for k, v in sent.items():
            if k not in got:
                return f"{path}.{k}: missing"
            found = _first_difference(got[k], v, f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return f"{path}: sent {sent!r}, read back {got!r}"
        for i, (g, v) in enumerate(zip(got, sent, strict=True)):
            found = _first_difference(g, v, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(sent, int) and not isinstance(sent, bool) and not -(2**63) <= sent < 2**64:
        sent = float(sent)  # read as the nearest float, as documented (the event is kept)
    if got != sent or type(got) is not type(sent):
        return f"{path}: sent {sent!r}, read back {got!r}"
    return None


@given(batch=st.lists(mutated_events(), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_events_are_stored_as_sent_or_refused_with_a_reason(
    fuzz_server: RunningServer, batch: list[dict[str, Any]]
) -> None:
    # the standard library writes integers past 64 bits, which orjson refuses to
    body = b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in batch)
    with fuzz_server.client() as c:
        r = c.post("/api/v1/ingest", content=body, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["accepted"] + out["rejected"] == len(batch), out
        refused = {err["index"] for err in out["errors"]}
        assert all(err["field"] and err["reason"] for err in out["errors"]), out
        for i, event in enumerate(batch):
            if i in refused:
                continue
            got = c.get(f"/api/events/{event['event_id']}")
            assert got.status_code == 200, (event, got.text)
            assert _first_difference(got.json(), event) is None, _first_difference(got.json(), event)
