"""agentwatch's rule pack: every rule's own positive and negative test events, data-driven from the files."""

from __future__ import annotations

import pytest

from agentwatch.detect.atr.matcher import AtrMatcher
from agentwatch.detect.atr.testcases import case_views
from agentwatch.detect.pack import pack_rules

RULES = pack_rules()
CASES = [
    pytest.param(rule, kind, i, id=f"{rule.id}-{kind}-{i}")
    for rule in RULES
    for kind in ("true_positives", "true_negatives")
    for i in range(len((rule.test_cases or {}).get(kind, [])))
]
MATCHER = AtrMatcher(RULES)


def test_pack_covers_the_required_threats_with_tags_and_cases():
    ids = {r.id for r in RULES}
    assert {"AW-PI-001", "AW-PI-002", "AW-PI-003"} <= ids  # tool results, retrieved documents, user input
    assert {"AW-SEC-001", "AW-SEC-002", "AW-SEC-003", "AW-SEC-004"} <= ids  # cloud, provider, private keys, tokens
    assert {"AW-PII-001", "AW-LEAK-001", "AW-MCP-001"} <= ids
    assert {"AW-TOOL-001", "AW-TOOL-002", "AW-TOOL-003"} <= ids  # download|sh, credential reads, destructive
    for rule in RULES:
        assert any(t.startswith("atlas.aml.t") for t in rule.tags), rule.id
        assert any(t.startswith("attack.") for t in rule.tags), rule.id
        assert rule.test_cases and rule.test_cases["true_positives"] and rule.test_cases["true_negatives"], rule.id


@pytest.mark.parametrize(("rule", "kind", "index"), CASES)
def test_pack_rule_case(rule, kind, index):
    case = rule.test_cases[kind][index]
    fired = {r.id for r in MATCHER.match_views(case_views(case))}
    if kind == "true_positives":
        assert rule.id in fired, case.get("description")
    else:
        assert rule.id not in fired, case.get("description")
