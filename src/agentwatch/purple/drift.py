"""Coverage drift: snapshots of what the enabled rules cover (ATT&CK technique ids, read by
:mod:`agentwatch.detect.coverage`) with the latest verdict of each catalogue test, and the
difference between two snapshots.

A snapshot is taken on request (``POST /api/v1/purple-team/drift/snapshot``); the newest
:data:`KEEP` are kept. A diff names the techniques covered in ``to`` and not in ``from``
(``added``), the reverse (``dropped``), and the tests whose verdict changed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from agentwatch.purple.catalog import AtomicTest
from agentwatch.purple.coverage import enabled_matrix

KEEP = 1_000


def snapshot_row(
    rules: Iterable[Any], tests: Iterable[AtomicTest], latest: dict[str, dict[str, Any]], by: str, label: str
) -> dict[str, Any]:
    rule_list = list(rules)
    matrix = enabled_matrix(rule_list)
    states = {t.id: (latest[t.id]["status"] if t.id in latest else None) for t in tests}
    return {
        "id": str(uuid.uuid4()),
        "created_at": time.time(),
        "created_by": by[:256],
        "label": label,
        "rules": sum(1 for r in rule_list if r.enabled),
        "techniques": orjson.dumps(sorted(matrix.covered)).decode(),
        "tests": orjson.dumps(dict(sorted(states.items()))).decode(),
    }


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed from snapshot ``old`` to snapshot ``new`` (their JSON forms)."""
    before, after = set(old["techniques"]), set(new["techniques"])
    changed = [
        {"test_id": tid, "from": old["tests"].get(tid), "to": state}
        for tid, state in sorted(new["tests"].items())
        if old["tests"].get(tid) != state
    ]
    changed += [
        {"test_id": tid, "from": state, "to": None}
        for tid, state in sorted(old["tests"].items())
        if tid not in new["tests"]
    ]
    return {
        "from": {k: old[k] for k in ("id", "created_at", "label", "rules", "techniques_covered")},
        "to": {k: new[k] for k in ("id", "created_at", "label", "rules", "techniques_covered")},
        "added": sorted(after - before),
        "dropped": sorted(before - after),
        "unchanged": len(before & after),
        "tests_changed": changed,
    }
