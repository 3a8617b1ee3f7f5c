"""bench/ingest: events per second from HTTP to committed rows.

Runs `agentwatch serve` as its own process (SQLite in a temporary data dir, then
a fresh PostgreSQL database), drives it with pre-encoded requests over
keep-alive connections, and checks the committed row count afterwards.

    .venv/bin/python bench/ingest/run.py [--events 200000] [--single 20000] [--processes 1,2] [--repeat 3]

With ``--repeat N`` each measurement is made N times on the same server and the table shows
the median, with the lowest and highest beside it (the machine's speed varies from minute to
minute, and how the kernel spreads four connections over several processes varies by run).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import calibrate  # noqa: E402
from bench.loadgen import build_request, run_load  # noqa: E402
from bench.warm import wait_warm  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BIN = Path(sys.executable).parent / "agentwatch"
GOALS = {"batch": 50_000, "single": 3_000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(i: int, run: str) -> dict:
    return {
        "event_id": f"{run}-{i}",
        "event_type": "ai.request" if i % 3 == 0 else "process.exec",
        "ts": "2026-01-01T00:00:00.000001Z",
        "host": {"hostname": "bench"},
        "process": {"pid": 1000 + i % 50, "ppid": 1, "name": "python3"},
        "data": {"request_id": f"r{i}", "provider": {"name": "openai"}, "model": {"id": "gpt-4o"}}
        if i % 3 == 0
        else {"exe": "/usr/bin/python3", "args": ["python3", "agent.py"]},
    }


def start_server(db_url: str, data_dir: str, processes: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AGENTWATCH_DATA_DIR": data_dir, "AGENTWATCH_LOG_LEVEL": "WARNING"}
    command = [str(BIN), "serve", "--no-auth", "--port", str(port), "--database-url", db_url]
    if processes > 1:  # (bench/ab.py starts older code too, which has no such option)
        command += ["--processes", str(processes)]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                wait_warm(url, processes=processes)
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def stored(url: str) -> int:
    return httpx.get(url + "/api/events", params={"limit": 1}, timeout=60).json()["total"]


def measure(url: str, mode: str, total_events: int) -> tuple[float, float, int]:
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    run = uuid.uuid4().hex[:8]
    headers = {"Content-Type": "application/x-ndjson"}
    if mode == "batch":
        per = 1000
        bodies = [
            b"\n".join(orjson.dumps(event(b * per + i, run)) for i in range(per)) for b in range(total_events // per)
        ]
        reqs = [build_request(host, port, "POST", "/api/v1/ingest", body, headers) for body in bodies]
        concurrency = 4
    else:
        per = 1
        reqs = [
            build_request(host, port, "POST", "/api/v1/ingest", orjson.dumps(event(i, run)), headers)
            for i in range(total_events)
        ]
        concurrency = 64
    before = stored(url)
    result = asyncio.run(run_load(url, lambda i: reqs[i], len(reqs), concurrency))
    committed = stored(url) - before
    if result.errors or committed != len(reqs) * per:
        raise SystemExit(f"{mode}: {result.errors} errors, {committed} of {len(reqs) * per} events committed")
    return committed / result.seconds, result.percentile(99) * 1000, committed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000, help="events for the batch run")
    ap.add_argument("--single", type=int, default=20_000, help="requests for the single-event run")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--processes", default="1", help="server process counts to measure, comma-separated (e.g. 1,2)")
    ap.add_argument("--repeat", type=int, default=1, help="measurements of each kind; the table shows their median")
    args = ap.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    console = Console()
    table = Table(title=f"bench/ingest: HTTP -> committed rows ({os.cpu_count()} CPUs, {calibrate.label()})")
    for col in (
        "store",
        "processes",
        "mode",
        "events/s",
        "goal",
        "ratio to goal",
        "lowest-highest",
        "p99 ms/request",
        "events committed",
    ):
        table.add_column(col)
    stores = [("sqlite", None)]
    if not args.skip_postgres:
        stores.append(("postgresql", f"aw_bench_{uuid.uuid4().hex[:8]}"))
    for (name, dbname), processes in itertools.product(stores, counts):
        with tempfile.TemporaryDirectory() as tmp:
            if dbname:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{dbname}"')
                db_url = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
            else:
                db_url = f"sqlite:///{tmp}/bench.db"
            proc, url = start_server(db_url, tmp, processes)
            try:
                for mode, n in (("batch", args.events), ("single", args.single)):
                    runs = [measure(url, mode, n) for _ in range(max(1, args.repeat))]
                    rates = [r[0] for r in runs]
                    rate = statistics.median(rates)
                    p99 = statistics.median(r[1] for r in runs)
                    committed = runs[0][2]
                    goal = GOALS[mode]
                    table.add_row(
                        name,
                        str(processes),
                        mode,
                        f"{rate:,.0f}",
                        f"{goal:,}",
                        f"{rate / goal:.2f}x",
                        f"{min(rates):,.0f}-{max(rates):,.0f}",
                        f"{p99:.1f}",
                        f"{committed:,}",
                    )
                    console.print(f"{name} x{processes} {mode}: {', '.join(f'{r:,.0f}' for r in rates)} events/s")
            finally:
                proc.terminate()
                proc.wait(60)
                if dbname:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    console.print(table)


if __name__ == "__main__":
    main()
