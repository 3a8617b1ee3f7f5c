"""Gateway benchmark: added latency and throughput, agentwatch vs LiteLLM proxy vs direct.

Everything runs on loopback: a fake OpenAI upstream (127.0.0.2), the agentwatch server with
its gateway route pointed at it (127.0.0.1), and, when it can be installed and started, the
LiteLLM proxy configured against the same upstream (127.0.0.3). For each target, with a
non-streaming and a streaming chat completion:

- latency: sequential requests, p50 / p99 of the full response time (and of the time to the
  first body byte for streams), after a warm-up;
- throughput: requests per second with ``--concurrency`` requests in flight for ``--duration``.

    python bench/gateway/run.py [--requests 400] [--duration 5] [--concurrency 16]
                                [--litellm-python /tmp/litellm-venv/bin/python]

LiteLLM is looked up as ``--litellm-python`` (a venv with ``litellm[proxy]`` installed, never
the project's own); without it the table has no LiteLLM rows and says why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LITELLM_KEY = "sk-bench-master-0123456789"  # the proxy refuses to start without one
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "ping " * 50}], "max_tokens": 50}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return True
        except httpx.HTTPError:
            time.sleep(0.2)
    return False


@dataclass
class Result:
    target: str
    mode: str
    latencies_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    rps: float = 0.0
    errors: int = 0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(client: httpx.AsyncClient, url: str, stream: bool, headers: dict[str, str]) -> tuple[float, float]:
    body = {**BODY, "stream": True} if stream else BODY
    t0 = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body, headers=headers) as r:
        async for _chunk in r.aiter_raw():
            if first is None:
                first = time.perf_counter()
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code}")
    end = time.perf_counter()
    return (end - t0) * 1000, ((first or end) - t0) * 1000


async def latency(url: str, stream: bool, n: int, headers: dict[str, str]) -> tuple[list[float], list[float], int]:
    lat, ttfb, errors = [], [], 0
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        for _ in range(max(20, n // 10)):  # warm-up: connections, caches
            try:
                await one(client, url, stream, headers)
            except Exception:  # noqa: BLE001 - counted below
                errors += 1
        for _ in range(n):
            try:
                total, first = await one(client, url, stream, headers)
                lat.append(total)
                ttfb.append(first)
            except Exception:  # noqa: BLE001
                errors += 1
    return lat, ttfb, errors


async def throughput(
    url: str, stream: bool, duration: float, concurrency: int, headers: dict[str, str]
) -> tuple[float, int]:
    done = 0
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop:
                try:
                    await one(client, url, stream, headers)
                    done += 1
                except Exception:  # noqa: BLE001
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return done / elapsed, errors


def settle(health_url: str, timeout: float = 60.0) -> None:
    """Wait until agentwatch has recorded everything of the previous run (its backlog is not the next run's noise)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = httpx.get(health_url, timeout=5).json()
        if doc.get("capture", {}).get("gateway", {}).get("pending", 0) == 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(HERE / "fake_upstream.py"), "--host", "127.0.0.2", "--port", str(port)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_agentwatch(port: int, upstream: str, data_dir: Path, detection: bool) -> subprocess.Popen[bytes]:
    cfg = data_dir / "agentwatch.toml"
    cfg.write_text(
        f"""
log_level = "WARNING"
[detection]
enabled = {"true" if detection else "false"}
[auth]
enabled = false
[auth.audit]
requests = false
[capture]
allow_loopback_upstreams = true
redaction = "safe"
[capture.routes.openai]
provider = "openai"
base_url = "{upstream}"
"""
    )
    cmd = [
        sys.executable,
        "-m",
        "agentwatch.cli",
        "serve",
        "--config",
        str(cfg),
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "wb"), env=env)  # noqa: SIM115


def start_litellm(python: str, port: int, upstream: str, work: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    if not python or not Path(python).exists():
        return None, f"no LiteLLM interpreter at {python!r} (pip install 'litellm[proxy]' into a temporary venv)"
    cfg = work / "litellm.yaml"
    cfg.write_text(
        f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream}/v1
      api_key: sk-bench-not-a-real-key
litellm_settings:
  telemetry: false
  drop_params: true
"""
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "*",
        "LITELLM_MASTER_KEY": LITELLM_KEY,
    }
    litellm = str(Path(python).parent / "litellm")
    cmd = [litellm, "--config", str(cfg), "--host", "127.0.0.3", "--port", str(port), "--num_workers", "1"]
    log = open(work / "litellm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if not wait_http(f"http://127.0.0.3:{port}/health/liveliness", timeout=120):
        proc.kill()
        tail = (work / "litellm.log").read_text(errors="replace")[-800:]
        return None, f"LiteLLM proxy did not start within 120 s: {tail}"
    return proc, ""


def fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="sequential requests per latency run")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--litellm-python", default="/tmp/litellm-venv/bin/python")
    ap.add_argument(
        "--detection",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run agentwatch's detection engine on the recorded events (as deployed) or measure the gateway alone",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aw-bench-gw-"))
    up_port, aw_port, ll_port = free_port("127.0.0.2"), free_port("127.0.0.1"), free_port("127.0.0.3")
    upstream = f"http://127.0.0.2:{up_port}"
    procs = [start_upstream(up_port)]
    procs.append(start_agentwatch(aw_port, upstream, work, args.detection))
    try:
        if not wait_http(upstream) or not wait_http(f"http://127.0.0.1:{aw_port}/api/health"):
            raise SystemExit(f"servers did not start; see {work}/server.log")
        litellm, why_not = start_litellm(args.litellm_python, ll_port, upstream, work)
        if litellm is not None:
            procs.append(litellm)
        targets = {
            "direct": (f"{upstream}/v1/chat/completions", {}),
            "agentwatch": (
                f"http://127.0.0.1:{aw_port}/gateway/openai/v1/chat/completions",
                {"Authorization": "Bearer sk-bench"},
            ),
        }
        if litellm is not None:
            targets["litellm"] = (
                f"http://127.0.0.3:{ll_port}/v1/chat/completions",
                {"Authorization": f"Bearer {LITELLM_KEY}"},
            )
        results: list[Result] = []
        health = f"http://127.0.0.1:{aw_port}/api/health"
        for mode in ("json", "stream"):
            for name, (url, headers) in targets.items():
                settle(health)
                res = Result(name, mode)
                res.latencies_ms, res.ttfb_ms, e1 = asyncio.run(latency(url, mode == "stream", args.requests, headers))
                res.rps, e2 = asyncio.run(throughput(url, mode == "stream", args.duration, args.concurrency, headers))
                res.errors = e1 + e2
                results.append(res)
                print(
                    f"  {mode:6} {name:10} p50={fmt(res.pct(res.latencies_ms, 0.5))} ms  rps={res.rps:.0f}  errors={res.errors}",
                    file=sys.stderr,
                )
        print_table(results, args, why_not)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: list[Result], args: argparse.Namespace, why_not: str) -> None:
    by = {(r.target, r.mode): r for r in results}
    print(
        f"\nrequests={args.requests} duration={args.duration}s concurrency={args.concurrency} "
        f"detection={'on' if args.detection else 'off'} (2 shared cores: expect noise)\n"
    )
    print(
        "| mode | target | p50 ms | p99 ms | added p50 ms | added p99 ms | TTFB p50 ms | added TTFB p50 ms | req/s | req/s vs direct | req/s vs LiteLLM | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        d = by[("direct", r.mode)]
        ll = by.get(("litellm", r.mode))
        p50, p99 = r.pct(r.latencies_ms, 0.5), r.pct(r.latencies_ms, 0.99)
        t50 = r.pct(r.ttfb_ms, 0.5)
        added50 = p50 - d.pct(d.latencies_ms, 0.5)
        added99 = p99 - d.pct(d.latencies_ms, 0.99)
        added_t = t50 - d.pct(d.ttfb_ms, 0.5)
        vs_direct = r.rps / d.rps if d.rps else float("nan")
        vs_ll = r.rps / ll.rps if ll and ll.rps else float("nan")
        print(
            f"| {r.mode} | {r.target} | {fmt(p50)} | {fmt(p99)} | {fmt(added50)} | {fmt(added99)} | {fmt(t50)} | {fmt(added_t)} "
            f"| {r.rps:.0f} | {fmt(vs_direct)}x | {fmt(vs_ll)}x | {r.errors} |"
        )
    if why_not:
        print(f"\nLiteLLM not measured: {why_not}")


if __name__ == "__main__":
    main()
