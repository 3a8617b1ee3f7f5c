"""Loading rules as an upload would: several documents, and errors that name a line and a column."""

from __future__ import annotations

import pytest

from agentwatch.detect.sigma import SigmaLoadError, load_path, load_rule

GOOD = """\
title: Curl piped to shell
id: 9b2f0c1e-0000-4000-8000-000000000001
status: test
level: high
description: download and run
tags: [attack.execution, attack.t1059.004]
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains|all: [curl, '| sh']
  condition: sel
"""


def error_of(text: str) -> SigmaLoadError:
    with pytest.raises(SigmaLoadError) as info:
        load_rule(text, "upload.yml")
    return info.value


def test_good_rule_metadata():
    (rule,) = load_rule(GOOD)
    assert (rule.id, rule.title, rule.level, rule.status) == (
        "9b2f0c1e-0000-4000-8000-000000000001",
        "Curl piped to shell",
        "high",
        "test",
    )
    assert rule.tags == ["attack.execution", "attack.t1059.004"]
    assert rule.logsource == {"product": "linux", "category": "process_creation"}
    assert rule.yaml == GOOD and rule.kind == "detection" and not rule.is_correlation


def test_several_documents_in_one_upload():
    corr = "title: Many\ncorrelation:\n  type: event_count\n  rules: [9b2f0c1e-0000-4000-8000-000000000001]\n"
    corr += "  group-by: [User]\n  timespan: 1h\n  condition: {gte: 5}\n"
    loaded = load_rule(GOOD + "---\n" + corr)
    assert [r.kind for r in loaded] == ["detection", "correlation"]
    assert loaded[1].is_correlation


def test_bad_yaml_has_line_and_column():
    err = error_of("title: x\ndetection:\n  sel: [unclosed\n  condition: sel\n")
    assert err.line == 4 and err.column is not None
    assert err.message.startswith("invalid YAML")
    assert err.source == "upload.yml"


def test_unknown_modifier_points_at_it():
    err = error_of(GOOD.replace("|contains|all", "|containz"))
    assert "containz" in err.message
    assert (err.line, err.column) == (10, 16)


def test_condition_naming_a_missing_detection():
    err = error_of(GOOD.replace("condition: sel", "condition: sel and other"))
    assert "other" in err.message
    assert err.line == 11


def test_unmapped_field_is_reported_with_its_position():
    err = error_of(GOOD.replace("CommandLine|contains|all", "Bogus_Field|contains|all"))
    assert "Bogus_Field" in err.message and "not mapped" in err.message
    assert (err.line, err.column) == (10, 5)


def test_not_a_mapping_and_empty():
    assert error_of("- just\n- a list\n").message == "a Sigma document must be a YAML mapping"
    assert error_of("").message == "no YAML document"


def test_oversized_upload_is_refused():
    err = error_of(GOOD + "#" + "x" * 300_000)
    assert "larger than" in err.message


def test_load_path_lists_bad_files_and_keeps_going(tmp_path):
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text("title: [\n")
    (tmp_path / "notes.txt").write_text("ignored")
    loaded, failures = load_path(tmp_path)
    assert [r.title for r in loaded] == ["Curl piped to shell"]
    assert [f.rsplit("/", 1)[1] for f, _ in failures] == ["bad.yml"]
    assert "invalid YAML" in failures[0][1]
