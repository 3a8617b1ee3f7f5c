"""Event time text: ``iso`` writes what ``datetime.isoformat`` would, with ``Z`` for UTC."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from agentwatch.events.model import EventError, iso, parse_ts


def reference(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00Z"),
        (1775210400.0, "2026-04-03T10:00:00Z"),  # whole seconds: no fraction
        (1775210400.5, "2026-04-03T10:00:00.500000Z"),  # a fraction: always six digits
        (1775210400.000001, "2026-04-03T10:00:00.000001Z"),
        (1775210400.9999996, "2026-04-03T10:00:01Z"),  # rounds to the next second
        (951782400.25, "2000-02-29T00:00:00.250000Z"),
    ],
)
def test_known_instants(epoch: float, text: str):
    assert iso(epoch) == text
    assert abs(parse_ts(text) - epoch) < 1e-6


def test_matches_isoformat_everywhere():
    rng = random.Random(20261205)
    values = [rng.uniform(0, 4.1e9) for _ in range(50_000)]
    values += [float(rng.randrange(0, 4_100_000_000)) for _ in range(2_000)]
    values += [s + f for s in (1775210400, 0, 4102444799) for f in (1e-7, 4e-7, 5e-7, 6e-7, 0.9999994, 0.9999995)]
    mismatched = [v for v in values if iso(v) != reference(v)]
    assert mismatched == []


def test_parse_ts_names_the_field_on_bad_text():
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "x" * 65):
        with pytest.raises(EventError) as err:
            parse_ts(bad, "since")
        assert err.value.field == "since"
    with pytest.raises(EventError):
        parse_ts(1775210400, "ts")
