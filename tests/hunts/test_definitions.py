"""Hunt definition files read and checked alone: every field's rule, with the line it is on."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentwatch.hunts.definition import DefinitionError, Hunt, parse, read

GOOD = """\
id: shell-download
title: Agent pipes a download into a shell
hypothesis: |
  An agent fetching a script and running it
  is how a prompt injection becomes code execution.
mitre: [T1059.004, TA0002, T1105]
indicators: [evil.example, 198.51.100.7]
query:
  template_id: agent.tool_call
  q: curl
  severity: 0
window: 6h
schedule: 15m
alert: {severity: high}
"""


def problems(text: str, min_interval_s: float = 60) -> list[tuple[int | None, str]]:
    got = parse("h.yml", text.encode(), min_interval_s)
    assert isinstance(got, list), got
    assert all(isinstance(e, DefinitionError) and e.file == "h.yml" for e in got)
    return [(e.line, e.error) for e in got]


def test_a_good_definition_reads_every_field() -> None:
    got = parse("h.yml", GOOD.encode(), 60)
    assert isinstance(got, Hunt)
    d = got.definition
    assert d.mitre == ["T1059.004", "TA0002", "T1105"]
    assert d.indicators == ["evil.example", "198.51.100.7"]
    assert d.query.template_id == "agent.tool_call" and d.query.q == "curl"
    assert d.window == 6 * 3600 and d.schedule == 15 * 60
    assert d.alert is not None and d.alert.severity == 7  # "high"
    assert len(got.digest) == 64
    # a comment or another spelling of the same definition is the same definition
    again = parse("other.yml", ("# reformatted\n" + GOOD.replace("6h", "360m")).encode(), 60)
    assert isinstance(again, Hunt) and again.digest == got.digest


def test_manual_schedule_and_defaults() -> None:
    got = parse("h.yml", b"id: a\ntitle: A\nhypothesis: h\nschedule: manual\n", 60)
    assert isinstance(got, Hunt)
    d = got.definition
    assert (d.schedule, d.window, d.alert, d.mitre, d.indicators) == (None, None, None, [], [])
    assert d.window_s(3600.0) == 3600.0


def test_unknown_filter_keys_and_bad_filter_values_name_field_and_line() -> None:
    text = "id: a\ntitle: A\nhypothesis: h\nquery:\n  template_id: agent.tool_call\n  colour: red\n  severity: 11\n"
    assert problems(text) == [
        (7, "query.severity: Input should be less than or equal to 10"),
        (6, "query.colour: Extra inputs are not permitted"),
    ]


def test_bad_mitre_ids_are_refused_one_by_one() -> None:
    text = "id: a\ntitle: A\nhypothesis: h\nmitre:\n  - T1059\n  - T59\n  - TA9999\n  - t1059.001\n"
    rule = "must be an ATT&CK technique (T1059, T1059.001) or tactic id (TA0002)"
    assert problems(text) == [(6, f"mitre.1: {rule}"), (7, f"mitre.2: {rule}"), (8, f"mitre.3: {rule}")]


@pytest.mark.parametrize(
    ("text", "line", "error"),
    [
        ("id: a\n  title: : x\n", 2, "yaml: mapping values are not allowed here"),
        ("a: &x [1]\nb: *x\n", 2, "yaml: aliases (*name) are not supported in hunt definitions"),
        ("- 1\n- 2\n", 1, "file: must hold one YAML document, a mapping of the hunt's fields"),
        ("id: a\n---\nid: b\n", 1, "file: must hold one YAML document, a mapping of the hunt's fields"),
        ("id: Bad Id\ntitle: A\nhypothesis: h\n", 1, "id: String should match pattern '^[a-z0-9][a-z0-9_-]{0,63}$'"),
        ("id: a\ntitle: A\nhypothesis: h\nowner: me\n", 4, "owner: Extra inputs are not permitted"),
        ("id: a\ntitle: A\n", 1, "hypothesis: Field required"),
        ("id: a\ntitle: A\nhypothesis: h\nwindow: 91d\n", 4, "window: must be between 1m and 90d"),
        ("id: a\ntitle: A\nhypothesis: h\nwindow: soon\n", 4, "window: must be a duration such as 90s, 15m, 24h or 7d"),
        (
            "id: a\ntitle: A\nhypothesis: h\nschedule: 30s\n",
            4,
            "schedule: must be manual or an interval between 60s (hunts.min_interval_s) and 30d",
        ),
        ("id: a\ntitle: A\nhypothesis: h\nalert: {severity: loud}\n", 4, "alert.severity: must be 0-10 or one of"),
        ('id: a\ntitle: A\nhypothesis: h\nindicators: ["a\\x1bb"]\n', 4, "indicators.0: must be printable text"),
        (
            "id: a\ntitle: A\nhypothesis: h\nwindow: 1h\nquery: {window_minutes: 5}\n",
            5,
            "query.window_minutes: give the hunt's window once, in window",
        ),
    ],
)
def test_each_bad_file_names_line_and_rule(text: str, line: int, error: str) -> None:
    (found,) = problems(text)
    assert found[0] == line and found[1].startswith(error), found


def test_field_size_caps() -> None:
    long_title = "id: a\ntitle: " + "x" * 201 + "\nhypothesis: h\n"
    assert problems(long_title) == [(2, "title: String should have at most 200 characters")]
    many = "id: a\ntitle: A\nhypothesis: h\nindicators: [" + ", ".join(f"i{n}" for n in range(101)) + "]\n"
    assert problems(many) == [(4, "indicators: List should have at most 100 items after validation, not 101")]


def test_a_shorter_minimum_interval_comes_from_the_settings() -> None:
    got = parse("h.yml", b"id: a\ntitle: A\nhypothesis: h\nschedule: 2s\n", 1)
    assert isinstance(got, Hunt) and got.definition.schedule == 2.0


def test_a_file_past_the_size_cap_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(GOOD.encode() + b"#" * 70_000)
    (err,) = read(path, 64 * 1024, 60)  # type: ignore[misc]
    assert (err.file, err.line, err.error) == ("big.yml", None, "file: larger than hunts.max_file_bytes (65536 bytes)")
    (bad,) = parse("bin.yml", b"\xff\xfe", 60)  # type: ignore[misc]
    assert bad.error == "file: not UTF-8 text (byte 0)"
