"""Sigma matcher throughput: agentwatch vs pySigma's SQLite backend (Zircolite-style) vs azuma.

    python bench/sigma/run.py [--events 20000] [--azuma-events 2000] [--matching-share 0.1]

All compiling SigmaHQ ``windows/process_creation`` rules are loaded into each engine;
the same Sysmon process-creation events (SigmaHQ regression samples that match, plus
benign everyday processes) go through each one on one thread. The peers are installed
from PyPI into ``bench/.peers/sigma`` (pinned, never committed). Match results are
compared rule by rule on the rules all engines loaded. Rule conversion/compilation
is not timed for anyone; loading events into SQLite is (Zircolite must do it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from corpus_events import build, to_record  # noqa: E402

from agentwatch.detect.fieldmap import windows  # noqa: E402
from agentwatch.detect.sigma import SigmaEngine, load_path  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "sigmahq"
PEERS = REPO / "bench" / ".peers" / "sigma"
PEER_PACKAGES = ["pysigma==2.0.1", "pySigma-backend-sqlite==2.1.1", "azuma==0.7.3"]


def peer_python() -> Path | None:
    python = PEERS / "bin" / "python"
    if not python.exists():
        print(f"installing peers into {PEERS} ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"peers unavailable: {exc}", file=sys.stderr)
            return None
    return python


def run_peer(python: Path, script: str, rule_list: Path, events: list[dict], tmp: Path) -> dict:
    events_path = tmp / f"{script}.events.json"
    out = tmp / f"{script}.out.json"
    events_path.write_text(json.dumps(events))
    subprocess.run([str(python), str(HERE / script), str(rule_list), str(events_path), str(out)], check=True)
    return json.loads(out.read_text())


def pairs(matches: dict[str, list[int]], rules: set[str], limit: int) -> set[tuple[str, int]]:
    return {(r, i) for r, idx in matches.items() if r in rules for i in idx if i < limit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=SHARED / "rules" / "windows" / "process_creation")
    parser.add_argument("--regression", type=Path, default=SHARED / "regression_data")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--azuma-events", type=int, default=2_000, help="azuma is slow: fewer events")
    parser.add_argument("--matching-share", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3, help="agentwatch passes (best is reported)")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()

    flat = build(args.regression, args.events, args.matching_share)
    rules, failures = load_path(args.rules)
    detection = [r for r in rules if r.kind == "detection"]
    engine = SigmaEngine(rules)
    compiled = engine.compiled_ids()
    print(f"rules: {len(detection)} loaded, {len(failures)} failed, {len(compiled)} compiled; events: {len(flat)}")

    # agentwatch: decode (EVTX-JSON record -> canonical Event) + match, and match alone
    records = [to_record(e) for e in flat]
    start = time.perf_counter()
    events = [windows.to_event(r) for r in records]
    decode_s = time.perf_counter() - start
    best = float("inf")
    ours: dict[str, list[int]] = {}
    for _ in range(args.repeat):
        ours = {}
        start = time.perf_counter()
        for index, event in enumerate(events):
            for rule in engine.match(event):
                ours.setdefault(rule.id, []).append(index)
        best = min(best, time.perf_counter() - start)
    aw_rate = len(events) / best
    aw_full = len(events) / (best + decode_s)
    print(f"agentwatch: {aw_rate:,.0f} events/s matching, {aw_full:,.0f} events/s with decoding")

    rows = [("agentwatch (match)", len(compiled), aw_rate), ("agentwatch (decode + match)", len(compiled), aw_full)]
    agreement: list[str] = []
    python = None if args.no_peers else peer_python()
    if python is not None:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            rule_files = sorted({r.source for r in detection if r.id in compiled})
            rule_list = tmp / "rules.txt"
            rule_list.write_text("\n".join(rule_files))
            sql = run_peer(python, "peer_sqlite.py", rule_list, flat, tmp)
            sql_rate = len(flat) / (sql["load_s"] + sql["query_s"])
            rows.append(("pySigma SQLite backend (load + queries)", len(sql["rules"]), sql_rate))
            az_events = flat[: args.azuma_events]
            az = run_peer(python, "peer_azuma.py", rule_list, az_events, tmp)
            az_rate = len(az_events) / az["match_s"] if az["match_s"] else 0.0
            rows.append(("azuma (naive per event)", len(az["rules"]), az_rate))
            common = set(compiled) & set(sql["rules"])
            a, b = pairs(ours, common, len(flat)), pairs(sql["matches"], common, len(flat))
            agreement.append(_agree("SQLite", a, b, len(common), len(flat), sql.get("query_errors", 0)))
            common_az = set(compiled) & set(az["rules"])
            n = len(az_events)
            a, c = pairs(ours, common_az, n), pairs(az["matches"], common_az, n)
            agreement.append(_agree("azuma", a, c, len(common_az), n, az.get("match_errors", 0)))
    base = rows[0][2]
    print()
    print("| engine | rules loaded | events/s | agentwatch (match) / this |")
    print("|---|---:|---:|---:|")
    for name, nrules, rate in rows:
        print(f"| {name} | {nrules} | {rate:,.0f} | {base / rate:,.1f}x |")
    print()
    for line in agreement:
        print(line)
    print(f"\nhost: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared machine)")


def _agree(name: str, ours: set, theirs: set, nrules: int, nevents: int, errors: int) -> str:
    same = len(ours & theirs)
    total = len(ours | theirs)
    pct = 100.0 * same / total if total else 100.0
    only_ours = sorted({r for r, _ in ours - theirs})
    only_theirs = sorted({r for r, _ in theirs - ours})
    text = (
        f"agreement with {name} on {nrules} common rules x {nevents} events: {same}/{total} matches identical "
        f"({pct:.2f}%); only agentwatch: {len(ours - theirs)} (rules {only_ours[:8]}), "
        f"only {name}: {len(theirs - ours)} (rules {only_theirs[:8]}); {name} errors: {errors}"
    )
    return text


if __name__ == "__main__":
    main()
