"""The per-field literal prefilter and the field reader: they skip rules, never matches."""

from __future__ import annotations

import copy

import pytest
import re2

from agentwatch.detect.fieldmap.windows import to_event
from agentwatch.detect.safe_regex import compile_safe
from tests.detect.sigma.helpers import engine, one_rule, proc
from tests.detect.sigma.test_fieldmap import SYSMON_1

WIN = "{product: windows, category: process_creation}"


def _evaluations(eng) -> int:
    (cost,) = eng.costs().values()
    return cost["evaluations"]


def test_a_literal_in_another_field_does_not_trigger_the_rule():
    eng = engine(one_rule("sel:\n  CommandLine|contains: curl\ncondition: sel\n"))
    assert not eng.match(proc("ls -l", exe="/usr/bin/curl", parent="/usr/bin/curl"))
    assert _evaluations(eng) == 0
    assert eng.match(proc("curl http://x", exe="/usr/bin/sh"))
    assert _evaluations(eng) == 1


def test_a_short_non_ascii_literal_beside_ascii_ones_still_filters():
    det = "sel:\n  CommandLine|contains:\n    - '\\u202e'\n    - '[U+202E]'\n    - '\u202e'\ncondition: sel\n"
    eng = engine(one_rule(det))
    assert not eng.match(proc("notepad report.txt"))
    assert _evaluations(eng) == 0  # no longer evaluated on every event
    assert eng.match(proc("notepad cod\u202eexe.txt"))
    assert eng.match(proc("notepad [u+202e]"))
    assert eng.match(proc("notepad \\u202E"))


def test_a_record_field_wins_and_the_canonical_path_fills_in():
    eng = engine(one_rule("sel:\n  CommandLine|contains: 'stop mpssvc'\ncondition: sel\n", WIN))
    assert eng.match(to_event(SYSMON_1))
    record_only = to_event(SYSMON_1)
    record_only.body["process"]["cmdline"] = "sc query"
    assert eng.match(record_only)  # data.attrs.CommandLine is read first
    canonical_only = to_event(SYSMON_1)
    del canonical_only.data["attrs"]["CommandLine"]
    canonical_only.body["process"]["cmdline"] = "SC STOP MPSSVC"
    assert eng.match(canonical_only)  # not in the record: the canonical path


def test_list_and_number_values_are_scanned_like_strings():
    det = "sel:\n  Tags|contains: beta-x\n  ProcessId: 3424\ncondition: sel\n"
    eng = engine(one_rule(det, WIN))
    record = copy.deepcopy(SYSMON_1)
    record["Event"]["EventData"]["Tags"] = ["alpha", "BETA-X1"]
    for _ in range(3):  # the memo of scanned values must give the same answer
        assert eng.match(to_event(record))
    record["Event"]["EventData"]["Tags"] = ["alpha", "beta"]
    assert not eng.match(to_event(record))


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"a(b)c", "xxabc"),
        (r"a(b)c", "xxab"),
        (r"^$", ""),
        (r"x$", "x\n"),
        ("(?i)\u00c9T\u00c9", "l'\u00e9t\u00e9 \U0001f600"),
        ("\u202e", "cod\u202eexe"),
        ("\U0001f600+", "run \U0001f600 now"),
        (r"-k\s\w{1,64}", "svchost.exe -k netsvcs -p"),
        (r"\bnet\s+user\b", "cmd /c net  user admin"),
    ],
)
def test_re2_yes_no_search_agrees_with_the_module_search(pattern: str, text: str):
    rx = compile_safe(pattern)
    assert rx.engine == "re2"
    assert rx.search(text) == (re2.compile(pattern).search(text) is not None)
