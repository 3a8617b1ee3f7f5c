"""The per-field literal prefilter and the field reader: they skip rules, never matches."""

from __future__ import annotations

import copy

import pytest
import re2
import regex

from agentwatch.detect.fieldmap.windows import to_event
from agentwatch.detect.safe_regex import SafeRegex, compile_safe
from agentwatch.detect.sigma import SigmaEngine
from agentwatch.detect.sigma.literals import fold_orbit, regex_clauses
from agentwatch.events.model import Event
from tests.detect.sigma.helpers import engine, one_rule, proc, rules
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


# -- the prefilter never hides a match ------------------------------------------------------------
# Each case is a rule and an event the rule's leaf accepts: the engine with its prefilter must
# match it, as the engine that evaluates every rule does.


def _accepts(detection: str, ev, logsource: str = "{product: linux, category: process_creation}") -> None:
    text = one_rule(detection, logsource)
    assert engine(text).match(ev), "the prefilter hid a match"
    assert SigmaEngine(rules(text), prefilter=False).match(ev), "the leaf itself does not accept the event"


def _with_pid(pid) -> Event:
    ev = proc("x")
    ev.body["process"]["pid"] = pid
    return ev


@pytest.mark.parametrize(
    "pid", ["0x1250", "0X1250", "0x_1250", "4.688e3", "4_688", "\uff14\uff16\uff18\uff18", "\u0664\u0666\u0668\u0668"]
)
def test_a_number_written_another_way_is_not_hidden(pid):
    # the number test accepts all of these as 4688; none contains the text "4688"
    _accepts("sel:\n  ProcessId: 4688\ncondition: sel\n", _with_pid(pid))
    _accepts("sel:\n  ProcessId: 4688\n  CommandLine: x\ncondition: sel\n", _with_pid(pid))


def test_a_large_float_number_is_not_hidden():
    _accepts("sel:\n  ProcessId: 10000000000000000\ncondition: sel\n", _with_pid(1e16))  # str(1e16) == "1e+16"


def test_a_number_late_in_a_long_list_is_not_hidden():
    # the string forms of a list stop at 256 elements; the number test reads them all
    _accepts("sel:\n  ProcessId: 4688\ncondition: sel\n", _with_pid([*range(300), 4688]))


def test_a_number_beyond_the_float_range_neither_raises_nor_hides_a_match():
    huge = "0x" + "f" * 300  # int(huge, 16) is too large for a float
    assert not engine(one_rule("sel:\n  ProcessId: 4688\ncondition: sel\n")).match(_with_pid(huge))
    _accepts("sel:\n  ProcessId|gt: 4688\ncondition: sel\n", _with_pid(huge))


@pytest.mark.parametrize("engine_name", ["re2", "python-regex-guarded"])
def test_case_folding_orbits_are_complete_within_the_first_two_planes(engine_name):
    # fold_orbit asks the engine which characters of planes 0 and 1 it folds together;
    # nothing above them has a case partner
    rest = "".join(chr(i) for i in range(0x20000, 0x110000))
    for ch in "aeiksuy\u03c3\u00b5\u00df":
        if engine_name == "re2":
            above = re2.compile("(?i)" + ch).findall(rest)
        else:
            above = regex.compile(ch, regex.IGNORECASE | regex.VERSION0).findall(rest)
        assert above == []
        assert ch in fold_orbit(ch, engine_name)
    assert fold_orbit("s", "re2") == {"s", "S", "\u017f"}
    assert fold_orbit("k", "re2") == {"k", "K", "\u212a"}


@pytest.mark.parametrize(
    ("detection", "cmdline"),
    [
        # "ΟΔΟΣ".lower() is "οδος" (final sigma), but inside "ΟΔΟΣΑ" the Σ lower-cases to σ
        ("CommandLine|cased|contains: '\u039f\u0394\u039f\u03a3'", "\u039f\u0394\u039f\u03a3\u0391"),
        ("CommandLine|cased|startswith: '\u039f\u0394\u039f\u03a3'", "\u039f\u0394\u039f\u03a3\u0391 x"),
        # "Σ12".lower() is "σ12", but after a letter the Σ ends a word: "ΟΔΟΣ12".lower() == "οδος12"
        ("CommandLine|cased|endswith: '\u03a312'", "\u039f\u0394\u039f\u03a312"),
        # a regex literal was lower-cased one character at a time: Σ -> σ, never ς
        ("CommandLine|re: '\u039f\u0394\u039f\u03a3'", "\u039f\u0394\u039f\u03a3"),
        ("CommandLine|re: '\u039f\u0394\u039f[\u03a3\u03c3]'", "\u039f\u0394\u039f\u03a3"),
        # case-insensitive regexes match the whole case folding orbit: σ/ς/Σ, s/S/ſ (U+017F), µ/μ
        ("CommandLine|re|i: '\u03bf\u03b4\u03bf\u03c3'", "\u039f\u0394\u039f\u03a3"),
        ("CommandLine|re|i: '\u03bf\u03b4\u03bf\u03c2'", "\u03bf\u03b4\u03bf\u03c3\u03b1"),
        ("CommandLine|re|i: 'powershell'", "power\u017fhell -nop"),
        ("CommandLine|re|i: '(?-i:X)\u03bf\u03b4\u03bf\u03c3'", "X\u039f\u0394\u039f\u03a3"),  # scoped flags
        ("CommandLine|re|i: '\u00b5sbuild'", "\u039cSBUILD"),
        # Python reads "[[:digit:]]" as a set and a literal "]"; RE2 as a POSIX class
        ("CommandLine|re: '[[:digit:]]abc'", "1abc"),
    ],
)
def test_case_folding_never_hides_a_string_or_regex_match(detection, cmdline):
    _accepts(f"sel:\n  {detection}\ncondition: sel\n", proc(cmdline))


def test_regex_literals_of_the_fallback_engine_follow_its_case_folding():
    # the regex module (used where RE2 cannot express a pattern) also folds İ (U+0130) with i,
    # and "İ".lower() is "i̇" (i + U+0307): "admin" alone would not be a necessary literal
    rx = SafeRegex("(?<=/)admin", "i")
    assert rx.engine == "python-regex-guarded"
    text = "/ADM\u0130N"
    assert rx.search(text)
    for clause in regex_clauses(rx.pattern, rx.flags, rx.engine):
        assert any(lit in text.lower() for lit in clause)
    assert regex_clauses(rx.pattern, rx.flags, rx.engine)  # and there still is a literal
    assert regex_clauses("admin", "i", "re2") == [frozenset({"admin"})]  # RE2 does not fold İ


def test_a_case_insensitive_regex_still_filters_through_its_variants():
    eng = engine(one_rule("sel:\n  CommandLine|re|i: 'powershell'\ncondition: sel\n"))
    assert not eng.match(proc("notepad x"))
    assert _evaluations(eng) == 0  # "powershell" / "powerſhell" ... are looked for, not nothing
    assert eng.match(proc("POWERSHELL -nop"))
    assert eng.match(proc("power\u017fhell -nop"))


# -- property: prefiltered matches == matches of every rule on every event ------------------------

_WORDS = [
    "powershell",
    "Invoke-Expression",
    "\u039f\u0394\u039f\u03a3",  # ΟΔΟΣ
    "\u03c3\u03c4\u03bf\u03c2",  # στος
    "stra\u00dfe",
    "\u00b5sbuild",
    "ADM\u0130N",
    "\u212aelvin",  # Kelvin sign
    "ca\u0301fe\u0301",
    "\u202egpj.exe",
    "\U0001f600run",
    "\uff43\uff4d\uff44",  # fullwidth "cmd"
]
_NUMBERS = ["4688", "0x1250", "+4688", "4.688e3", "4_688", "\uff14\uff16\uff18\uff18", "4688.0", " 4688 ", "-4688"]
_NUMBERS += ["04688", "4689", "nan", "inf", "1e16", "0x2386F26FC10000"]
_MODIFIERS = ["", "|contains", "|startswith", "|endswith", "|cased", "|cased|contains", "|cased|endswith"]
_MODIFIERS += ["|re", "|re|i"]


def _spellings(word: str) -> list[str]:
    """The word as events write it: other cases, long s, final and non-final sigma."""
    out = {word, word.upper(), word.lower(), word.swapcase(), word.title(), word.casefold()}
    out |= {w.replace("s", "\u017f") for w in list(out)}
    out |= {w.replace("\u03c3", "\u03c2").replace("\u03c2", "\u03c3", 1) for w in list(out)}
    out |= {w.replace("\u00b5", "\u03bc") for w in list(out)}
    return sorted(out)


def _property_rules() -> list[str]:
    import re

    docs = []
    for i, word in enumerate(_WORDS):
        for j, modifier in enumerate(_MODIFIERS):
            value = re.escape(word) if modifier.startswith("|re") else word
            if modifier.startswith("|re") and i % 2:
                value = f"(?:{value})+"
            value = value.replace("'", "''")
            det = f"sel:\n  CommandLine{modifier}: '{value}'\ncondition: sel\n"
            docs.append(one_rule(det, title=f"w{i}m{j}"))
    for i, number in enumerate(("4688", "10000000000000000")):
        docs.append(one_rule(f"sel:\n  ProcessId: {number}\ncondition: sel\n", title=f"n{i}"))
        det = f"sel:\n  ProcessId: {number}\n  CommandLine|contains: run\ncondition: sel\n"
        docs.append(one_rule(det, title=f"nc{i}"))
    return docs


def test_prefiltered_matches_equal_matches_of_every_rule_on_every_event():
    import random

    loaded = [rule for doc in _property_rules() for rule in rules(doc)]
    filtered, every = SigmaEngine(loaded), SigmaEngine(loaded, prefilter=False)
    rng = random.Random(20261205)
    events = []
    for word in _WORDS:
        for spelling in _spellings(word):
            events.append(proc(spelling))
            events.append(proc(f"x {spelling} y"))
            events.append(proc(f"{spelling}A"))
            events.append(proc(f"\u03a3{spelling}\u03a3"))
    pool = [s for w in _WORDS for s in _spellings(w)] + _NUMBERS
    for _ in range(400):
        ev = proc(" ".join(rng.sample(pool, rng.randint(1, 3))))
        ev.body["process"]["pid"] = rng.choice([*_NUMBERS, 4688, 4688.0, 1e16, 10**16, [7, "0x1250"]])
        events.append(ev)
    mismatches = []
    hits = 0
    for ev in events:
        got = sorted(r.title for r in filtered.match(ev))
        want = sorted(r.title for r in every.match(ev))
        hits += len(want)
        if got != want:
            mismatches.append((ev.body["process"]["cmdline"], ev.body["process"]["pid"], got, want))
    assert not mismatches, mismatches[:5]
    assert hits > 500  # the events do exercise the rules
    evaluated = sum(c["evaluations"] for c in filtered.costs().values())
    assert evaluated < sum(c["evaluations"] for c in every.costs().values()) / 3  # and it still filters
