"""bench/aop: the AOP collector API, agentwatch beside the original @useaop/collector.

Each collector runs as its own process on loopback with a fresh store:

1. batch ingest: 100,000 AOP events in 1,000 sessions (NDJSON, 100 events a request);
   this also seeds the store for step 2 (the peer has no batch form: it is seeded
   with single posts and gets "n/a" for this row);
2. ``GET /sessions`` and ``GET /sessions/{id}`` latency (p50 / p95) with those
   1,000 sessions and 100,000 events stored;
3. single-event ``POST /events`` per second from 50 concurrent keep-alive clients.

    .venv/bin/python bench/aop/run.py [--single 20000] [--postgres] [--peer-dir DIR]

The peer is looked for in ``--peer-dir`` (a directory where
``npm install @useaop/collector better-sqlite3@12`` was run); if it is missing or
cannot start, its column says why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import calibrate  # noqa: E402
from bench.loadgen import LoadResult, build_request, run_load  # noqa: E402
from bench.warm import wait_warm  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BIN = Path(sys.executable).parent / "agentwatch"
SESSIONS = 1_000
PER_SESSION = 100
BATCH = 100
GOALS = {"single": 5_000.0, "detail_p95_ms": 20.0}
TYPES = ["cognition.thought", "operation.tool_start", "operation.tool_end", "cognition.decision"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aop_event(session: str, seq: int) -> dict:
    kind = "session.started" if seq == 1 else TYPES[seq % len(TYPES)]
    payload = {
        "session.started": {"goal": "benchmark the collector"},
        "cognition.thought": {"reasoning": f"step {seq}", "confidence": "high"},
        "operation.tool_start": {"tool": "search", "input": {"q": f"query {seq}"}},
        "operation.tool_end": {"tool": "search", "success": True, "latency_ms": 12},
        "cognition.decision": {"chosen": "continue", "alternatives": ["stop"]},
    }[kind]
    return {
        "spec": "aop/1.0",
        "session_id": session,
        "parent_session_id": None,
        "agent_id": f"agent-{sum(session.encode()) % 20}",
        "sequence": seq,
        "timestamp": f"2026-04-03T10:{(seq // 60) % 60:02d}:{seq % 60:02d}.000Z",
        "type": kind,
        "payload": payload,
    }


def wait_up(url: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("did not answer /health within 60 s")


def start_agentwatch(db_url: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AGENTWATCH_DATA_DIR": data_dir, "AGENTWATCH_LOG_LEVEL": "WARNING"}
    cmd = [str(BIN), "serve", "--no-auth", "--port", str(port), "--database-url", db_url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    wait_warm(url)
    return proc, url


def start_peer(peer_dir: Path, data_dir: str) -> tuple[subprocess.Popen, str]:
    module = peer_dir / "node_modules" / "@useaop" / "collector"
    if not module.exists():
        raise RuntimeError(f"{module} not found (npm install @useaop/collector into {peer_dir} first)")
    if shutil.which("node") is None:
        raise RuntimeError("node is not installed")
    port = free_port()
    script = (
        f"require({str(module)!r}).startCollector({{port: {port}, dbPath: {str(Path(data_dir) / 'events.db')!r}, "
        "openBrowser: false}).catch(e => { console.error(e); process.exit(1) })"
    )
    proc = subprocess.Popen(["node", "-e", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc)
    except RuntimeError as exc:
        err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None and proc.stderr else ""
        proc.kill()
        raise RuntimeError(f"{exc}: {err}") from None
    return proc, url


def load(url: str, reqs: list[bytes], concurrency: int) -> LoadResult:
    result = asyncio.run(run_load(url, lambda i: reqs[i], len(reqs), concurrency))
    if result.errors:
        raise RuntimeError(f"{result.errors} of {result.requests} requests failed")
    return result


def requests_for(url: str, method: str, paths: list[str], bodies: list[bytes] | None, headers: dict) -> list[bytes]:
    port = int(url.rsplit(":", 1)[1])
    if bodies is None:
        return [build_request("127.0.0.1", port, method, p, b"", headers) for p in paths]
    return [build_request("127.0.0.1", port, method, p, b, headers) for p, b in zip(paths, bodies, strict=True)]


def run_collector(url: str, *, batch_form: bool, single: int, reads: int, run: str) -> dict[str, str]:
    """Measure one running collector; returns the formatted cells of its column."""
    out: dict[str, str] = {}
    sessions = [f"bench-{run}-{i}" for i in range(SESSIONS)]
    events = [aop_event(s, seq) for seq in range(1, PER_SESSION + 1) for s in sessions]
    hdr = {"Content-Type": "application/json"}
    if batch_form:
        bodies = [b"\n".join(orjson.dumps(e) for e in events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
        reqs = requests_for(url, "POST", ["/events"] * len(bodies), bodies, {"Content-Type": "application/x-ndjson"})
        res = load(url, reqs, 8)
        out["batch"] = f"{len(events) / res.seconds:,.0f} events/s"
    else:
        bodies = [orjson.dumps(e) for e in events]
        reqs = requests_for(url, "POST", ["/events"] * len(bodies), bodies, hdr)
        load(url, reqs, 50)
        out["batch"] = "n/a (no batch form)"
    listed = httpx.get(url + "/sessions", timeout=60).json()["sessions"]
    if len(listed) < 100:
        raise RuntimeError(f"only {len(listed)} sessions listed after seeding")
    res = load(url, requests_for(url, "GET", ["/sessions"] * reads, None, {}), 4)
    out["list"] = f"{res.percentile(50) * 1000:.1f} / {res.percentile(95) * 1000:.1f}"
    rng = random.Random(7)
    paths = [f"/sessions/{rng.choice(sessions)}" for _ in range(reads)]
    res = load(url, requests_for(url, "GET", paths, None, {}), 4)
    out["detail"] = f"{res.percentile(50) * 1000:.1f} / {res.percentile(95) * 1000:.1f}"
    out["detail_p95"] = f"{res.percentile(95) * 1000:.3f}"
    probe = httpx.get(url + paths[0], timeout=60).json()
    if len(probe["events"]) != PER_SESSION:
        raise RuntimeError(f"session detail has {len(probe['events'])} events, expected {PER_SESSION}")
    singles = [orjson.dumps(aop_event(f"single-{run}-{i % SESSIONS}", 1000 + i // SESSIONS)) for i in range(single)]
    res = load(url, requests_for(url, "POST", ["/events"] * single, singles, hdr), 50)
    out["single"] = f"{single / res.seconds:,.0f} posts/s"
    out["single_rate"] = f"{single / res.seconds:.1f}"
    return out


def measure_agentwatch(db: str, args: argparse.Namespace) -> dict[str, str]:
    dbname = None
    with tempfile.TemporaryDirectory() as tmp:
        if db == "postgresql":
            import psycopg

            dbname = f"aw_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            db_url = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
        else:
            db_url = f"sqlite:///{tmp}/bench.db"
        proc, url = start_agentwatch(db_url, tmp)
        try:
            return run_collector(url, batch_form=True, single=args.single, reads=args.reads, run=uuid.uuid4().hex[:6])
        finally:
            proc.terminate()
            proc.wait(60)
            if dbname:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def measure_peer(args: argparse.Namespace) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_peer(Path(args.peer_dir), tmp)
        try:
            return run_collector(url, batch_form=False, single=args.single, reads=args.reads, run="peer")
        finally:
            proc.terminate()
            proc.wait(60)


def ratio(ours: str | None, theirs: str | None, higher_is_better: bool) -> str:
    try:
        a, b = float(ours or ""), float(theirs or "")
    except ValueError:
        return "n/a"
    if a == 0 or b == 0:
        return "n/a"
    return f"{a / b:.2f}x" if higher_is_better else f"{b / a:.2f}x faster"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", type=int, default=20_000, help="single-event posts (50 concurrent clients)")
    ap.add_argument("--reads", type=int, default=2_000, help="GET requests per read measurement")
    ap.add_argument("--postgres", action="store_true", help="also measure agentwatch on PostgreSQL")
    ap.add_argument("--peer-dir", default=str(Path(__file__).resolve().parents[1] / ".peers" / "aop"))
    args = ap.parse_args()
    console = Console()
    speed = calibrate.label()  # before the runs load the machine
    columns: dict[str, dict[str, str]] = {}
    targets = ["agentwatch sqlite"] + (["agentwatch postgresql"] if args.postgres else []) + ["@useaop/collector"]
    with Progress(console=console) as progress:
        task = progress.add_task("collectors", total=len(targets))
        for name in targets:
            try:
                if name == "@useaop/collector":
                    columns[name] = measure_peer(args)
                else:
                    columns[name] = measure_agentwatch(name.split()[1], args)
            except Exception as exc:  # say exactly why a column is empty
                columns[name] = {"error": str(exc)[:300]}
                console.print(f"[yellow]{name}: {exc}[/yellow]")
            progress.advance(task)
    table = Table(
        title=f"bench/aop ({os.cpu_count()} CPUs, shared machine, {speed}; {SESSIONS} sessions, "
        f"{SESSIONS * PER_SESSION:,} events stored)"
    )
    table.add_column("measure")
    for name in targets:
        table.add_column(name)
    table.add_column("agentwatch sqlite vs peer")
    table.add_column("goal")
    ours, peer = columns.get("agentwatch sqlite", {}), columns.get("@useaop/collector", {})
    rows = [
        (
            "single POST /events, 50 clients",
            "single",
            ratio(ours.get("single_rate"), peer.get("single_rate"), True),
            ">= 5,000 posts/s",
        ),
        ("batch ingest (NDJSON, 100/request)", "batch", "n/a", ""),
        ("GET /sessions p50 / p95 ms", "list", "", ""),
        (
            "GET /sessions/{id} p50 / p95 ms",
            "detail",
            ratio(ours.get("detail_p95"), peer.get("detail_p95"), False),
            "p95 < 20 ms",
        ),
    ]
    for label, key, rat, goal in rows:
        table.add_row(label, *[columns[n].get(key, columns[n].get("error", "")) for n in targets], rat, goal)
    console.print(table)


if __name__ == "__main__":
    main()
