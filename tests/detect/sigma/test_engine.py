"""Engine behaviour beyond matching: ReDoS safety, cost counters, enable/disable, prefilter soundness."""

from __future__ import annotations

import time

from agentwatch.detect.safe_regex import compile_safe
from tests.detect.sigma.helpers import engine, one_rule, proc


def test_catastrophic_regex_completes_fast_in_a_rule():
    eng = engine(one_rule("sel:\n  CommandLine|re: '^(a+)+$'\ncondition: sel\n"))
    start = time.perf_counter()
    assert not eng.match(proc("a" * 50_000 + "!"))
    assert time.perf_counter() - start < 0.5
    assert eng.regex_engines() == {"re2": 1}


def test_pattern_re2_cannot_express_runs_guarded_with_a_timeout():
    rx = compile_safe(r"^(a|aa)+(?=b)\1", timeout_s=0.05)
    assert rx.engine == "python-regex-guarded"
    start = time.perf_counter()
    assert not rx.search("a" * 60 + "c")
    assert time.perf_counter() - start < 1.0
    lookahead = compile_safe(r"a+(?=b)")
    assert lookahead.engine == "python-regex-guarded"
    assert lookahead.search("xaab") and not lookahead.search("xaac")
    assert compile_safe(r"(\w+)-\1").search("abc-abc")
    assert not compile_safe(r"(\w+)-\1").search("abc-abd")


def test_rule_with_look_around_and_back_reference_loads_and_runs_guarded():
    # RE2 cannot express either; the rule is read (not refused) and runs on the guarded engine
    eng = engine(
        one_rule("sel:\n  CommandLine|re: 'curl(?=.*\\|\\s*sh)'\ncondition: sel\n", title="pipe to shell"),
        one_rule("sel:\n  CommandLine|re|i: '(\\w+)=\\1;'\ncondition: sel\n", title="repeat"),
    )
    assert eng.regex_engines() == {"python-regex-guarded": 2}
    assert [r.title for r in eng.match(proc("curl -s http://x | sh"))] == ["pipe to shell"]
    assert eng.match(proc("curl -s http://x -o f")) == []
    assert [r.title for r in eng.match(proc("set AB=ab;"))] == ["repeat"]
    assert eng.match(proc("set ab=cd;")) == []
    start = time.perf_counter()
    slow = engine(one_rule("sel:\n  CommandLine|re: '^(a|aa)+(?=b)\\1'\ncondition: sel\n"))
    assert slow.match(proc("a" * 60 + "c")) == []  # times out: no match, no hang
    assert time.perf_counter() - start < 2.0


def test_costs_count_evaluations_and_time_per_rule():
    eng = engine(
        one_rule("sel:\n  CommandLine|contains: curl\ncondition: sel\n", title="cheap"),
        one_rule("sel:\n  CommandLine|re: 'x.*y'\ncondition: sel\n", title="regex"),
    )
    for cmd in ("curl a", "ls", "xay"):
        eng.match(proc(cmd))
    costs = {c["title"]: c for c in eng.costs().values()}
    assert costs["cheap"]["evaluations"] == 1  # prefilter: evaluated only when "curl" occurs
    assert costs["cheap"]["matches"] == 1
    assert costs["regex"]["evaluations"] == 3  # no literal: always evaluated
    assert costs["regex"]["matches"] == 1
    assert costs["regex"]["seconds"] > 0


def test_set_enabled_turns_a_rule_off_and_on():
    eng = engine(one_rule("sel:\n  CommandLine|contains: curl\ncondition: sel\n"))
    (rule_id,) = eng.compiled_ids()
    eng.set_enabled(rule_id, False)
    assert eng.match(proc("curl x")) == []
    eng.set_enabled(rule_id, True)
    assert len(eng.match(proc("curl x"))) == 1


def test_prefilter_needs_every_and_clause_but_keeps_not_and_or_sound():
    det = "a:\n  CommandLine|contains: alpha\nb:\n  Image|endswith: /beta\nc:\n  CommandLine|contains: gamma\n"
    eng = engine(one_rule(det + "condition: (a and b) or not c\n"))
    assert eng.match(proc("alpha", exe="/bin/beta"))
    assert eng.match(proc("nothing"))  # "not c" holds without any literal
    assert not eng.match(proc("gamma alpha", exe="/bin/other"))


def test_prefilter_from_regex_literals_keeps_every_match():
    eng = engine(one_rule("sel:\n  CommandLine|re|i: 'inv[o0]ke-(?:expression|webrequest)\\s'\ncondition: sel\n"))
    assert eng.match(proc("powershell INV0KE-WebRequest http://x"))
    assert eng.match(proc("powershell invoke-expression $x"))
    assert not eng.match(proc("powershell invoke-command $x"))


def test_rare_character_prefilter_for_emoji_lists():
    det = "sel:\n  CommandLine|contains:\n    - '\U0001f600'\n    - '1\ufe0f\u20e3'\ncondition: sel\n"
    eng = engine(one_rule(det))
    assert eng.match(proc("run \U0001f600 now"))
    assert eng.match(proc("pick 1\ufe0f\u20e3"))
    assert not eng.match(proc("pick 1 now"))
    (cost,) = eng.costs().values()
    assert cost["evaluations"] == 2  # selected by its characters, not evaluated on every event


def test_repeated_values_give_the_same_answer_as_fresh_ones():
    eng = engine(one_rule("sel:\n  CommandLine|contains|all: ['-enc', 'hidden']\ncondition: sel\n"))
    for _ in range(3):  # the per-value scan memo must not change results
        assert eng.match(proc("powershell -w hidden -enc AAA"))
        assert not eng.match(proc("powershell -w hidden"))
