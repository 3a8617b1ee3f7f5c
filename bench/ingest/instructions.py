"""bench/ingest/instructions: machine instructions per event on the ingest path, under callgrind.

The shared machines these benchmarks run on change speed by a factor of two or three from
one session to the next and by a third within an hour, so a change of a few per cent in
the cost of an event cannot be read from events per second. Instructions can: valgrind's
callgrind counts every instruction the process executes, the same count for the same code
and input whatever else the machine is doing.

What is counted is one agentwatch (the whole product, as ``agentwatch serve`` builds it, on
SQLite in a temporary data directory) taking batches of 1,000 of ``bench/ingest``'s events
in process, with no HTTP: the OISP codec decoding the NDJSON body, the stages, the commit
with its derived rows, every detector and the finding sinks. The bundled ATR rules are
compiled and five batches run first; counting covers the batches after them only. The
store's background threads (trace indexer, WAL checkpointer) are stopped first, since they
run by the clock and would make the count depend on the machine's speed.

    .venv/bin/python bench/ingest/instructions.py [--batches 3] [--old REV]

With ``--old REV`` the older commit is measured too, from a temporary git worktree, and the
table gives the ratio. Each measurement takes a few minutes (valgrind runs Python about
fifty times slower, start-up included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
PER_BATCH = 1000
WARM_BATCHES = 5


async def _count(batches: int) -> None:
    """The child, under callgrind: start agentwatch, warm up, count ``batches`` batches."""
    import orjson
    from bench.ingest.run import event

    from agentwatch.app import Agentwatch
    from agentwatch.config import Settings
    from agentwatch.pipeline.stages import run_stages
    from agentwatch.store import events as event_store

    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["AGENTWATCH_DATA_DIR"] = data_dir
        os.environ["AGENTWATCH_LOG_LEVEL"] = "WARNING"
        aw = Agentwatch(Settings())
        await aw.start()
        try:
            detection = next(d for d in aw.pipeline.detectors if d.name == "detection")
            while detection.atr_matcher is None and not detection.atr_ready.is_set():
                await asyncio.sleep(0.25)
            for thread in (aw.trace_indexer, aw.checkpointer):
                if thread is not None:
                    thread.stop()
            pipeline, codec = aw.pipeline, aw.oisp
            bodies = [
                b"\n".join(orjson.dumps(event(b * PER_BATCH + i, "instructions")) for i in range(PER_BATCH))
                for b in range(WARM_BATCHES + batches)
            ]
            for i, body in enumerate(bodies):
                if i == WARM_BATCHES:
                    subprocess.run(
                        ["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True
                    )
                decoded = codec.decode(body, "application/x-ndjson")
                kept = run_stages(pipeline.stages, decoded.events)
                stored = event_store.commit_batch(pipeline.engine, kept, pipeline.commit_steps)
                findings = [f for d in pipeline.detectors for f in d.detect(stored)]
                if findings:
                    for sink in pipeline.finding_sinks:
                        await sink(findings)
                if len(stored) != PER_BATCH:
                    raise SystemExit(f"batch {i}: {len(stored)} of {PER_BATCH} events stored")
            subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], check=True, capture_output=True)
        finally:
            await aw.stop()


def measure(src: Path, batches: int) -> float:
    """Instructions per event of the agentwatch under ``src``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}", "PYTHONHASHSEED": "0"}
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, str(Path(__file__)), "--child", "--batches", str(batches)]
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the count failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        totals = re.search(r"^totals:\s+(\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise SystemExit("callgrind wrote no totals")
        return int(totals.group(1)) / (batches * PER_BATCH)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=3, help="batches of 1,000 events counted")
    ap.add_argument("--old", help="an older commit to measure beside this checkout")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        asyncio.run(_count(args.batches))
        return
    console = Console()
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this checkout", ROOT / "src")]
        if args.old:
            where = Path(tmp) / "old"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(where), args.old], cwd=ROOT, check=True)
            trees.insert(0, (args.old, where / "src"))
        try:
            for label, src in trees:
                with console.status(f"counting {label} under callgrind"):
                    rows.append((label, measure(src, args.batches)))
                console.print(f"{label}: {rows[-1][1]:,.0f} instructions per event")
        finally:
            if args.old:
                subprocess.run(["git", "worktree", "remove", "--force", str(Path(tmp) / "old")], cwd=ROOT)
    table = Table(title=f"bench/ingest/instructions: in process, {args.batches} x {PER_BATCH} events, SQLite")
    for col in ("code", "instructions per event", "ratio"):
        table.add_column(col)
    for label, per in rows:
        table.add_row(label, f"{per:,.0f}", f"{per / rows[0][1]:.3f}x")
    console.print(table)


if __name__ == "__main__":
    main()
