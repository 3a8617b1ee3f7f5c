"""Definition fields a careless or hostile author gets wrong: a boolean alert severity, field
names that would write control characters into the log, and durations too large for a float."""

from __future__ import annotations

from pathlib import Path

from agentwatch.hunts.catalog import Catalog
from agentwatch.hunts.definition import parse
from agentwatch.hunts.settings import HuntSettings
from tests.hunts.helpers import definition, write

SEVERITY_RULE = "alert.severity: must be 0-10 or one of critical, high, info, informational, low, medium, warning"


def problems(body: str) -> list[dict[str, object]]:
    got = parse("x.yml", definition("x", body=body).encode(), 60)
    assert isinstance(got, list), "the definition loaded"
    return [e.as_json() for e in got]


def test_an_alert_severity_of_true_or_a_fraction_is_refused_once() -> None:
    assert problems("alert: {severity: true}\n") == [{"file": "x.yml", "line": 5, "error": SEVERITY_RULE}]
    assert problems("alert: {severity: 5.5}\n") == [{"file": "x.yml", "line": 5, "error": SEVERITY_RULE}]
    assert problems("alert: {severity: 11}\n") == [
        {"file": "x.yml", "line": 5, "error": "alert.severity: must be 0-10"}
    ]


def test_a_field_name_with_control_characters_is_reported_escaped() -> None:
    assert problems('"\\e[31mred\\nfake": 1\n') == [
        {"file": "x.yml", "line": 5, "error": "\\x1b[31mred\\nfake: Extra inputs are not permitted"}
    ]


def test_a_duration_too_large_for_a_float_is_refused_not_raised() -> None:
    huge = "1" + "0" * 400
    assert problems(f"window: {huge}\n") == [
        {"file": "x.yml", "line": 5, "error": "window: must be between 1m and 90d"}
    ]
    got = parse("x.yml", definition("x", schedule=huge).encode(), 60)
    assert isinstance(got, list)
    assert [e.as_json() for e in got] == [
        {
            "file": "x.yml",
            "line": 4,
            "error": "schedule: must be manual or an interval between 60s (hunts.min_interval_s) and 30d",
        }
    ]


def test_a_folder_with_a_huge_duration_still_loads_its_other_files(tmp_path: Path) -> None:
    write(tmp_path, "a-huge.yml", definition("huge", body="window: 1" + "0" * 400 + "\n"))
    write(tmp_path, "b-fine.yml", definition("fine"))
    cat = Catalog(tmp_path, HuntSettings(directory=tmp_path))
    cat.refresh()
    assert list(cat.hunts) == ["fine"]
    assert [e.file for e in cat.errors] == ["a-huge.yml"]
