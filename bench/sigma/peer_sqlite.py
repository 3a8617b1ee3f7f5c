"""pySigma's SQLite backend run the way Zircolite runs it (executed in the peers' venv).

Rules are converted to SQL once (not timed). Timed: loading the events into an
in-memory SQLite table (one column per field, as Zircolite flattens them) and running
every rule's query over it. REGEXP is a Python function, as in Zircolite.

Usage: python peer_sqlite.py RULE_LIST EVENTS_JSON OUT_JSON
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from pathlib import Path

from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule


def regexp(pattern: str, value: object) -> int:
    if value is None:
        return 0
    try:
        return 1 if re.search(pattern, str(value)) else 0
    except re.error:
        return 0


def main() -> None:
    rule_list, events_path, out_path = sys.argv[1:4]
    backend = sqliteBackend(collate_nocase=True)
    queries: list[tuple[str, str]] = []
    fields: set[str] = set()
    skipped = 0
    for path in Path(rule_list).read_text(encoding="utf-8").split("\n"):
        if not path:
            continue
        try:
            collection = SigmaCollection.from_yaml(Path(path).read_text(encoding="utf-8"))
            for rule in collection.rules:
                if not isinstance(rule, SigmaRule):
                    continue
                for query in backend.convert_rule(rule):
                    queries.append((str(rule.id), query.replace("SELECT * FROM", "SELECT row_id FROM", 1)))
                fields.update(backend.required_fields(rule))
        except Exception:  # noqa: BLE001 - a rule the backend cannot convert is left out and counted
            skipped += 1
    events = json.loads(Path(events_path).read_text(encoding="utf-8"))
    for event in events:
        fields.update(event)
    columns = sorted(fields, key=str.lower)
    seen: set[str] = set()
    unique = [c for c in columns if not (c.lower() in seen or seen.add(c.lower()))]

    start = time.perf_counter()
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, regexp, deterministic=True)
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in unique)
    db.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY, {quoted})")
    marks = ", ".join("?" for _ in range(len(unique) + 1))
    rows = [[i] + [e.get(c) for c in unique] for i, e in enumerate(events)]
    db.executemany(f"INSERT INTO logs VALUES ({marks})", rows)
    db.commit()
    loaded = time.perf_counter()
    matches: dict[str, list[int]] = {}
    errors = 0
    for rule_id, query in queries:
        try:
            hits = [row[0] for row in db.execute(query)]
        except sqlite3.Error:
            errors += 1
            continue
        if hits:
            matches.setdefault(rule_id, []).extend(hits)
    done = time.perf_counter()
    Path(out_path).write_text(
        json.dumps(
            {
                "rules": sorted({r for r, _ in queries}),
                "skipped": skipped,
                "query_errors": errors,
                "load_s": loaded - start,
                "query_s": done - loaded,
                "matches": matches,
            }
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
