"""POST /api/v1/sigma/rules with hostile or mistyped YAML: always 422 INVALID_RULE naming the field, never a 500."""

from __future__ import annotations

import pytest

from agentwatch.detect.sigma import SigmaEngine, load_rule

BASE = """\
title: Curl piped to shell
id: 9b2f0c1e-0000-4000-8000-0000000000a1
name: base_rule
status: test
level: high
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: curl
  condition: sel
"""


RULE = BASE.replace("0000000000a1", "0000000000d1")

# A YAML double-quoted "\\uD800" escape decodes to a lone surrogate: text no JSON encoder or database accepts.
SURROGATES = [
    ("title", RULE.replace("title: Curl piped to shell", 'title: "curl \\uD800"'), "title: contains a lone surrogate"),
    ("description", RULE + 'description: "\\uDC00"\n', "description: contains a lone surrogate"),
    ("tag", RULE + 'tags: ["attack.\\uD83D"]\n', "tags[0]: contains a lone surrogate"),
    (
        "value",
        RULE.replace("CommandLine|contains: curl", 'CommandLine|contains: "cu\\uDFFFrl"'),
        "detection.sel.CommandLine|contains: contains a lone surrogate",
    ),
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry_run", "stored"])
@pytest.mark.parametrize(("name", "text", "expected"), SURROGATES, ids=[c[0] for c in SURROGATES])
def test_lone_surrogate_escape_in_an_upload_is_invalid_rule_naming_the_field(srv, name, text, expected, dry_run):
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": text, "dry_run": dry_run})
        assert r.status_code == 422, (name, r.status_code, r.text[:300])
        error = r.json()["error"]
        assert error["code"] == "INVALID_RULE"
        assert expected in error["message"], error["message"]
        assert isinstance(error["details"]["line"], int)
        # nothing was stored: the catalogue still answers and does not list the rule
        listed = c.get("/api/v1/sigma/rules", params={"format": "sigma"})
        assert listed.status_code == 200, listed.text[:300]
        assert "9b2f0c1e-0000-4000-8000-0000000000d1" not in [x["id"] for x in listed.json()["rules"]]


def test_a_clean_rule_still_uploads(srv):
    text = RULE.replace("0000000000d1", "0000000000d2") + 'description: "emoji \\U0001F600 and \\u00e9"\n'
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": text, "dry_run": True})
    assert r.status_code == 200, r.text
    assert r.json()["rules"][0]["description"] == "emoji \U0001f600 and \u00e9"


def with_condition(condition: str) -> str:
    return BASE.replace("condition: sel", f"condition: {condition}")


def correlation(body: str) -> str:
    """BASE plus a correlation over it; ``body`` is the inside of the ``correlation`` flow mapping."""
    return BASE + "---\ntitle: Many curls\nid: 9b2f0c1e-0000-4000-8000-0000000000a2\ncorrelation: {" + body + "}\n"


COUNT = "rules: [base_rule], group-by: [CommandLine], timespan: 1h"
BLOCK_500 = "".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "leaf: 1\n"

CASES = [
    # YAML the reader refuses: nesting, aliases, scalars it cannot convert
    ("flow nesting 1000 deep", "a: " + "[" * 1000 + "]" * 1000, "a: nested deeper than 64 levels"),
    ("block mapping 500 deep", BLOCK_500, "k0: nested deeper than 64 levels"),
    ("5000-digit integer", "title: " + "9" * 5000 + "\n", "title: integer longer than 4300 digits"),
    (
        "5000-digit integer in a detection",
        BASE.replace("CommandLine|contains: curl", "CommandLine: " + "9" * 5000),
        "detection.sel.CommandLine: integer longer than 4300 digits",
    ),
    ("explicit !!int that is not one", BASE + "custom: !!int twelve\n", "custom: not a valid int"),
    ("explicit !!timestamp that is not one", BASE + "date: !!timestamp 2026-99-99\n", "date: not a valid timestamp"),
    ("alias", BASE + "refs: &r [a]\nmore: *r\n", "aliases (*name) are not supported"),
    # an invalid date is a string that pySigma rejects, naming the field
    ("invalid date", BASE + "date: 2026-99-99\n", "date '2026-99-99' is invalid"),
    ("invalid modified", BASE + "modified: 2026/13/01\n", "modified '2026/13/01' is invalid"),
    # the condition
    ("1000 nots", with_condition("not " * 1000 + "sel"), "detection.condition: nested deeper than 32"),
    ("100 parentheses", with_condition("(" * 100 + "sel" + ")" * 100), "detection.condition: nested deeper than 32"),
    ("condition too long", with_condition(" or ".join(["sel"] * 3000)), "detection.condition: longer than 8192"),
    ("condition is an int", with_condition("5"), "detection.condition: must be a string or a list of strings"),
    ("condition list with an int", with_condition("[sel, 5]"), "detection.condition: must be a string or a list"),
    ("condition is a mapping", with_condition("{a: 1}"), "detection.condition: must be a string or a list"),
    # top-level fields the code assumes are strings
    ("id is an int", BASE.replace("id: 9b2f0c1e-0000-4000-8000-0000000000a1", "id: 5"), "id: must be a string"),
    ("id is a list", BASE.replace("id: 9b2f0c1e-0000-4000-8000-0000000000a1", "id: [a]"), "id: must be a string"),
    ("title is an int", BASE.replace("title: Curl piped to shell", "title: 5"), "title: must be a string"),
    ("level is an int", BASE.replace("level: high", "level: 5"), "level: must be a string"),
    ("status is a list", BASE.replace("status: test", "status: [test]"), "status: must be a string"),
    ("name is a mapping", BASE.replace("name: base_rule", "name: {a: 1}"), "name: must be a string"),
    # detection items
    ("field name is an int", BASE.replace("CommandLine|contains: curl", "5: curl"), "field name 5 must be a string"),
    ("regex is an int", BASE.replace("CommandLine|contains: curl", "CommandLine|re: 5"), "must be a string"),
    ("null with a modifier", BASE.replace("contains: curl", "contains: null"), "incompatible to value type of null"),
    # correlations
    (
        "correlation type is an int",
        correlation(f"type: 5, {COUNT}, condition: {{gte: 2}}"),
        "correlation.type: must be a string",
    ),
    (
        "correlation timespan is an int",
        correlation("type: event_count, rules: [base_rule], timespan: 5, condition: {gte: 2}"),
        "correlation.timespan: must be a string",
    ),
    (
        "correlation group-by holds a mapping",
        correlation("type: event_count, rules: [base_rule], group-by: [{a: 1}], timespan: 1h, condition: {gte: 2}"),
        "correlation.group-by: must be a string or a list of strings",
    ),
    (
        "correlation rules holds an int",
        correlation("type: event_count, rules: [5], timespan: 1h, condition: {gte: 2}"),
        "correlation.rules: must be a string or a list of strings",
    ),
    (
        "correlation percentile is a list",
        correlation(f"type: value_count, {COUNT}, condition: {{field: CommandLine, gte: 2, percentile: [1]}}"),
        "correlation.condition.percentile: must be an integer",
    ),
    (
        "temporal condition 1000 nots",
        correlation(f"type: temporal, {COUNT}, condition: '{'not ' * 1000}base_rule'"),
        "correlation.condition: nested deeper than 32",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_rule_is_invalid_rule_naming_the_field(srv, name, text, expected):
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": text, "dry_run": True})
    assert r.status_code == 422, (name, r.status_code, r.text[:500])
    error = r.json()["error"]
    assert error["code"] == "INVALID_RULE"
    assert expected in error["message"], error["message"]
    assert error["message"] == f"yaml: {error['details']['message']}"
    assert "object at 0x" not in error["message"] and "invalid Sigma rule" not in error["message"]
    assert isinstance(error["details"]["line"], int) and isinstance(error["details"]["column"], int)


def test_deep_nesting_points_at_the_level_past_the_limit(srv):
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": BLOCK_500, "dry_run": True})
    details = r.json()["error"]["details"]
    assert r.status_code == 422 and details["line"] == 65  # the 65th nested mapping starts on line 65


@pytest.mark.parametrize("date", ["2026-01-02", "2026/01/02", "2026/1/2"])
def test_valid_dates_still_load(srv, date):
    with srv.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": BASE + f"date: {date}\nmodified: {date}\n", "dry_run": True})
    assert r.status_code == 200, r.text
    assert r.json()["rules"][0]["id"] == "9b2f0c1e-0000-4000-8000-0000000000a1"


def test_stored_correlation_with_a_date_like_custom_field_stays_live(srv):
    """Dates stay strings, so a custom field that only looks like a date is stored and the engine rebuilds."""
    text = correlation(f"type: event_count, {COUNT}, condition: {{gte: 2}}").replace(
        "title: Many curls", "title: Many curls\nreviewed: 2026-99-99"
    )
    text = text.replace("0000000000a1", "0000000000b1").replace("0000000000a2", "0000000000b2")
    text = text.replace("base_rule", "stored_base")
    with srv.client() as c:
        created = c.post("/api/v1/sigma/rules", json={"yaml": text})
        assert created.status_code == 201, created.text
        got = c.get("/api/v1/sigma/rules/9b2f0c1e-0000-4000-8000-0000000000b2")
        assert got.status_code == 200 and got.json()["correlation"] is True
        assert c.get("/api/v1/sigma/rules", params={"format": "sigma"}).status_code == 200


def test_correlation_with_a_date_like_custom_field_builds():
    """The correlation engine re-reads the rule's YAML the loader's way: no ValueError, no dropped correlation."""
    text = correlation(f"type: event_count, {COUNT}, condition: {{gte: 2}}").replace(
        "title: Many curls", "title: Many curls\nreviewed: 2026-99-99"
    )
    engine = SigmaEngine(load_rule(text))
    assert engine.problems == []
