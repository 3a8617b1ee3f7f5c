"""agentwatch's own rule pack for AI agents: ATR-format YAML files with ATLAS/ATT&CK tags and test events.

Each file under ``rules/`` is one rule. Besides the ATR fields it carries
``tags.atlas`` / ``tags.attack`` lists and ``test_cases`` whose entries hold a
whole OISP ``event`` (or an ATR-style ``input``/``tool_response``... case), so a
rule is checked against what the pipeline really sees.
"""

from __future__ import annotations

from pathlib import Path

from agentwatch.detect.atr.rules import AtrRule, load_dir

RULES_DIR = Path(__file__).resolve().parent / "rules"


def pack_rules() -> list[AtrRule]:
    rules, errors = load_dir(RULES_DIR)
    if errors:  # a broken built-in rule is a bug in agentwatch, never silently skipped
        raise ValueError("; ".join(f"{f}: {e}" for f, e in errors))
    for rule in rules:  # no install paths in alerts and APIs
        rule.source = f"agentwatch-pack:{Path(rule.source).name}"
    return rules
