"""The purple-team view of ATT&CK coverage: per technique, the catalogue tests exercising it
and whether their latest run passed, beside the enabled rules tagged with it.

Tactic and technique naming and the reading of rule tags are :mod:`agentwatch.detect.coverage`'s
(its ``TACTICS`` order and ``Matrix``), so this view and ``/api/v1/attack/coverage`` always
agree on what an enabled rule covers.

A technique's ``status``: ``passed`` when every test exercising it passed on its latest run,
``failed`` when the latest run of any of them failed, ``partial`` when some passed and the
others never ran, ``untested`` when none ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentwatch.detect.coverage import TACTICS, Matrix
from agentwatch.purple.catalog import AtomicTest


def enabled_matrix(rules: Iterable[Any]) -> Matrix:
    """The coverage matrix of the enabled rules (``RuleInfo``), without alerts."""
    matrix = Matrix()
    for rule in rules:
        if rule.enabled:
            matrix.add(rule.tags, rule.id)
    return matrix


def _status(states: list[str | None]) -> str:
    if any(s == "failed" for s in states):
        return "failed"
    if states and all(s == "passed" for s in states):
        return "passed"
    return "partial" if any(s == "passed" for s in states) else "untested"


def build(tests: Iterable[AtomicTest], latest: dict[str, dict[str, Any]], rules: Iterable[Any]) -> dict[str, Any]:
    """Techniques (sorted by id) with their tests and rules, tactics in matrix order, totals."""
    matrix = enabled_matrix(rules)
    by_technique: dict[str, list[AtomicTest]] = {}
    for test in tests:
        for tid in test.techniques:
            by_technique.setdefault(tid, []).append(test)
    rule_counts: dict[str, set[str]] = {}
    for cells in matrix.own.values():
        for tid, cell in cells.items():
            rule_counts.setdefault(tid, set()).update(cell.rules)
    techniques = []
    for tid in sorted(by_technique):
        runs = [{"test_id": t.id, "name": t.name, "latest": latest.get(t.id)} for t in by_technique[tid]]
        states = [r["latest"]["status"] if r["latest"] else None for r in runs]
        tactics = sorted({tac for t in by_technique[tid] for tac in t.tactics})
        techniques.append(
            {
                "id": tid,
                "tactics": tactics,
                "status": _status(states),
                "tests": runs,
                "rules": len(rule_counts.get(tid, ())),
                "covered_by_rules": tid in matrix.covered,
            }
        )
    tactics = []
    for tactic in TACTICS:
        mine = [t for t in techniques if tactic.shortname in t["tactics"]]
        if tactic.retired and not mine:
            continue
        tactics.append(
            {
                "id": tactic.id,
                "shortname": tactic.shortname,
                "name": tactic.name,
                "techniques": [t["id"] for t in mine],
                "passed": sum(t["status"] == "passed" for t in mine),
                "failed": sum(t["status"] == "failed" for t in mine),
            }
        )
    counts = {s: sum(t["status"] == s for t in techniques) for s in ("passed", "failed", "partial", "untested")}
    return {
        "techniques": techniques,
        "tactics": tactics,
        "totals": {"techniques": len(techniques), **counts, "techniques_covered_by_rules": len(matrix.covered)},
    }
