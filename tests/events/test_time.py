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


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T10:00:00X+00:00",  # a stray character where the offset begins
        "2026-03-01T10:00:00\x00",  # a trailing NUL
        "2026W101",  # an ISO week date
        "20260301T100000",  # the basic (undashed) form
        "2026-03-01T10:00:00Z+00:00",
        "\u0662\u0660\u0662\u0666-03-01T10:00:00Z",  # digits of another script
    ],
)
def test_text_that_is_no_rfc_3339_time_is_refused(text: str):
    """Python's ``fromisoformat`` takes each of these; none is a time any sender means."""
    with pytest.raises(EventError, match="not an RFC 3339 timestamp"):
        parse_ts(text)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-03-01T10:00:00Z", 1772359200.0),
        ("2026-03-01t10:00:00z", 1772359200.0),
        ("2026-03-01 10:00:00+00:00", 1772359200.0),
        ("2026-03-01T15:30:00+05:30", 1772359200.0),
        ("2026-03-01T15:30:00+0530", 1772359200.0),
        ("2026-03-01T10:00:00.5-00:00", 1772359200.5),
        ("2026-03-01T10:00:00.123456789Z", 1772359200.123456),  # nanoseconds: cut to microseconds
        ("2026-03-01T10:00", 1772359200.0),  # no seconds, no offset: UTC
        ("2026-03-01", 1772323200.0),  # a bare date: its midnight, UTC
    ],
)
def test_rfc_3339_and_the_documented_forms_are_taken(text: str, epoch: float):
    assert parse_ts(text) == pytest.approx(epoch, abs=1e-6)
