"""The condition grammar: and/or/not, parentheses, 1 of / all of (patterns and them)."""

from __future__ import annotations

import pytest

from tests.detect.sigma.helpers import engine, one_rule, proc

DETECTIONS = """\
sel_curl:
  CommandLine|contains: curl
sel_wget:
  CommandLine|contains: wget
pipe:
  CommandLine|contains: '| sh'
filter_local:
  CommandLine|contains: localhost
"""

CASES = {
    "sel_curl and pipe": {"curl x | sh": True, "curl x": False, "wget x | sh": False},
    "sel_curl or sel_wget": {"curl x": True, "wget x": True, "fetch x": False},
    "not sel_curl": {"wget x": True, "curl x": False},
    "(sel_curl or sel_wget) and pipe and not filter_local": {
        "wget x | sh": True,
        "curl localhost | sh": False,
        "curl x": False,
    },
    "sel_curl or sel_wget and pipe": {"curl x": True, "wget x": False, "wget x | sh": True},  # and binds tighter
    "1 of sel_* and pipe": {"curl x | sh": True, "wget x | sh": True, "fetch x | sh": False},
    "all of sel_*": {"curl x; wget y": True, "curl x": False},
    "1 of them": {"curl": True, "localhost": True, "nothing": False},
    "all of them": {"curl wget localhost | sh": True, "curl wget | sh": False},
    "any of sel_* and not 1 of filter_*": {"curl x": True, "curl localhost": False},
}


@pytest.mark.parametrize("condition", list(CASES))
def test_condition_forms(condition):
    eng = engine(one_rule(DETECTIONS + f"condition: {condition}\n"))
    for cmdline, expected in CASES[condition].items():
        assert bool(eng.match(proc(cmdline))) is expected, (condition, cmdline)


def test_detection_map_items_are_and_linked_and_list_of_maps_or_linked():
    det = """\
    sel:
      - CommandLine|contains: curl
        Image|endswith: /bash
      - CommandLine|contains: wget
    condition: sel
    """
    eng = engine(one_rule(det))
    assert eng.match(proc("curl x", exe="/bin/bash"))
    assert not eng.match(proc("curl x", exe="/bin/zsh"))
    assert eng.match(proc("wget x", exe="/bin/zsh"))


def test_condition_list_is_or_of_conditions():
    det = DETECTIONS + "condition:\n  - sel_curl and pipe\n  - sel_wget\n"
    eng = engine(one_rule(det))
    assert eng.match(proc("wget x"))
    assert eng.match(proc("curl x | sh"))
    assert not eng.match(proc("curl x"))
