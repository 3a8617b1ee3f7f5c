"""azuma, a naive per-event Sigma matcher (executed in the peers' venv).

Timed: every rule's ``match`` on every event (dicts, as azuma takes them).

Usage: python peer_azuma.py RULE_LIST EVENTS_JSON OUT_JSON
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import azuma


def main() -> None:
    rule_list, events_path, out_path = sys.argv[1:4]
    rules = []
    skipped = 0
    for path in Path(rule_list).read_text(encoding="utf-8").split("\n"):
        if not path:
            continue
        try:
            rules.append(azuma.Rule.model_validate_file(path))
        except Exception:  # noqa: BLE001 - a rule azuma cannot parse is left out and counted
            skipped += 1
    events = json.loads(Path(events_path).read_text(encoding="utf-8"))
    matches: dict[str, list[int]] = {}
    errors = 0
    start = time.perf_counter()
    for index, event in enumerate(events):
        for rule in rules:
            try:
                hit = rule.match(event)
            except Exception:  # noqa: BLE001 - azuma raises on some values; counted as no match
                errors += 1
                continue
            if hit:
                matches.setdefault(str(rule.id), []).append(index)
    done = time.perf_counter()
    Path(out_path).write_text(
        json.dumps(
            {
                "rules": sorted(str(r.id) for r in rules),
                "skipped": skipped,
                "match_errors": errors,
                "match_s": done - start,
                "matches": matches,
            }
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
