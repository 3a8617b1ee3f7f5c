"""bench/ab: one measurement of two commits, back to back, alternating.

This machine's speed moves by a third or more within a day, so a change is judged by
runs of the code before it and the code after it taken in turn (the older first in odd
rounds, the newer in even ones), each against a fresh server and store. The older commit is checked out in a temporary git worktree and its
server is started with that worktree's ``src`` first on ``PYTHONPATH``; the newer one is
this checkout as it stands (or ``--new REV``).

    .venv/bin/python bench/ab.py --old 967c549 --measure ingest-batch --rounds 3
    .venv/bin/python bench/ab.py --old 967c549 --measure aop-single --postgres
    .venv/bin/python bench/ab.py --old 967c549 --measure ingest-batch --processes 2

With ``--processes N`` the CPU time each server process spent on the run is read from
``/proc`` (psutil), and a run in which one process spent at least :data:`ONE_SIDED` of it
is marked one-sided: the kernel spreads the client's four connections over the processes
by their port numbers, and now and then gives one process all of them, so the run measures
that spread rather than the code. One-sided runs are shown but left out of the median; the
median of all runs is shown beside it (what a client meets, the spread included; a server
whose processes even out their connections has no one-sided runs).

Measurements: ``ingest-batch`` (NDJSON of 1,000 events, 4 connections, 100,000 events),
``ingest-single`` (64 connections, 10,000 requests), both from ``bench/ingest``, and
``aop-single`` (single ``POST /events`` from 50 clients, 15,000 posts after 5,000 to warm
up, from ``bench/aop``) and ``aop-batch`` (NDJSON bodies of 100 AOP events from 8 clients,
100,000 events in 1,000 sessions, as ``bench/aop`` seeds its store).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("ingest-batch", "ingest-single", "aop-single", "aop-batch")
# A run in which one server process spent this share of the servers' CPU time is one-sided.
ONE_SIDED = 0.8


def _database(tmp: str, postgres: bool) -> tuple[str, str | None]:
    if not postgres:
        return f"sqlite:///{tmp}/ab.db", None
    import psycopg

    from bench.ingest.run import PG_ADMIN

    name = f"aw_ab_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def _drop(name: str | None) -> None:
    if name:
        import psycopg

        from bench.ingest.run import PG_ADMIN

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cpu_seconds(procs: list[psutil.Process]) -> list[float]:
    out = []
    for p in procs:
        try:
            t = p.cpu_times()
            out.append(t.user + t.system)
        except psutil.NoSuchProcess:
            out.append(0.0)
    return out


def measure_here(measure: str, postgres: bool, processes: int = 1) -> tuple[float, float]:
    """Run one measurement against a fresh server of whatever ``agentwatch`` imports here;
    returns the rate and the largest share of the run's CPU time one server process spent."""
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        db_url, dbname = _database(tmp, postgres)
        try:
            if measure.startswith("ingest-"):
                from bench.ingest import run as ingest

                proc, url = ingest.start_server(db_url, tmp, processes)
                try:
                    mode = measure.removeprefix("ingest-")
                    servers = psutil.Process(proc.pid).children(recursive=True) or [psutil.Process(proc.pid)]
                    before = _cpu_seconds(servers)
                    rate, _p99, _n = ingest.measure(url, mode, 100_000 if mode == "batch" else 10_000)
                    used = [after - was for after, was in zip(_cpu_seconds(servers), before, strict=True)]
                    return rate, (max(used) / sum(used) if sum(used) > 0 else 1.0)
                finally:
                    proc.terminate()
                    proc.wait(60)
            from bench.aop import run as aop

            proc, url = aop.start_agentwatch(db_url, tmp)
            try:
                run = uuid.uuid4().hex[:6]

                def posts(n: int, first_seq: int) -> list[bytes]:
                    bodies = [
                        json.dumps(aop.aop_event(f"ab-{run}-{i % 1000}", first_seq + i // 1000)).encode()
                        for i in range(n)
                    ]
                    return aop.requests_for(url, "POST", ["/events"] * n, bodies, {"Content-Type": "application/json"})

                if measure == "aop-batch":
                    events = [
                        aop.aop_event(f"ab-{run}-{i}", seq)
                        for seq in range(1, aop.PER_SESSION + 1)
                        for i in range(aop.SESSIONS)
                    ]
                    bodies = [
                        b"\n".join(json.dumps(e).encode() for e in events[i : i + aop.BATCH])
                        for i in range(0, len(events), aop.BATCH)
                    ]
                    reqs = aop.requests_for(
                        url, "POST", ["/events"] * len(bodies), bodies, {"Content-Type": "application/x-ndjson"}
                    )
                    return len(events) / aop.load(url, reqs, 8).seconds, 1.0
                aop.load(url, posts(5_000, 1), 50)
                result = aop.load(url, posts(15_000, 100), 50)
                return 15_000 / result.seconds, 1.0
            finally:
                proc.terminate()
                proc.wait(60)
        finally:
            _drop(dbname)


def _run(src: Path, measure: str, postgres: bool, processes: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, str(Path(__file__)), "--child", measure, "--processes", str(processes)]
    cmd += ["--postgres"] if postgres else []
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    rate, share = out.stdout.strip().splitlines()[-1].split()
    return float(rate), float(share)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", help="the older commit (any git revision)")
    ap.add_argument("--new", help="the newer commit (default: this checkout as it stands)")
    ap.add_argument("--measure", choices=MEASURES, default="ingest-batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="on a fresh PostgreSQL database instead of SQLite")
    ap.add_argument("--processes", type=int, default=1, help="server processes (ingest measurements only)")
    ap.add_argument("--child", choices=MEASURES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        rate, share = measure_here(args.child, args.postgres, args.processes)
        print(rate, share)
        return
    if not args.old:
        ap.error("--old is required")
    sys.path.insert(0, str(ROOT))
    from bench import calibrate

    speed = calibrate.label()  # before the runs load the machine
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path] = {}
        for label, rev in (("old", args.old), ("new", args.new)):
            if rev is None:
                trees[label] = ROOT / "src"
                continue
            where = Path(tmp) / label
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(where), rev], cwd=ROOT, check=True)
            trees[label] = where / "src"
        try:
            rates: dict[str, list[tuple[float, bool]]] = {"old": [], "new": []}
            for i in range(args.rounds):
                # which runs first changes every round: the second server of a round ran slower
                # (the first one's files still being written back), 0.82x and 0.87x for two
                # commits whose ingest paths differ by nothing measurable, 0.98x swapped
                for label in ("old", "new") if i % 2 == 0 else ("new", "old"):
                    rate, share = _run(trees[label], args.measure, args.postgres, args.processes)
                    one_sided = args.processes > 1 and share >= ONE_SIDED
                    rates[label].append((rate, one_sided))
                    note = f" (one-sided: one process spent {share:.0%} of the CPU time)" if one_sided else ""
                    console.print(f"round {i + 1} {label}: {rate:,.0f}/s{note}")
        finally:
            for label in ("old", "new"):
                if trees[label] != ROOT / "src":
                    subprocess.run(["git", "worktree", "remove", "--force", str(trees[label].parent)], cwd=ROOT)
    store = "postgresql" if args.postgres else "sqlite"
    shape = f"{args.processes} server processes, " if args.processes > 1 else ""
    table = Table(title=f"bench/ab: {args.measure} on {store}, {shape}{os.cpu_count()} CPUs, {speed}, alternating runs")
    for col in ("code", "runs per second (* one-sided)", "median of the others", "ratio", "median of all"):
        table.add_column(col)
    medians = {label: _median(runs) for label, runs in rates.items()}
    for label, rev in (("old", args.old), ("new", args.new or "this checkout")):
        runs = " / ".join(f"{r:,.0f}{'*' if one_sided else ''}" for r, one_sided in rates[label])
        median, old_median = medians[label], medians["old"]
        ratio = f"{median / old_median:.2f}x" if median and old_median else "-"
        every = statistics.median([r for r, _ in rates[label]]) if rates[label] else None
        table.add_row(
            f"{label} ({rev})", runs, f"{median:,.0f}" if median else "-", ratio, f"{every:,.0f}" if every else "-"
        )
    console.print(table)


def _median(runs: list[tuple[float, bool]]) -> float | None:
    """The median of the runs that were not one-sided (None when every run was)."""
    kept = [rate for rate, one_sided in runs if not one_sided]
    return statistics.median(kept) if kept else None


if __name__ == "__main__":
    main()
