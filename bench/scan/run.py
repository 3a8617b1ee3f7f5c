"""Scan the same loopback fleet of mock AI agents and decoys with agentsniff 1.3.0 and with agentwatch.

Both tools run as their command-line programs, on the same host list and the same
ports; wall time includes process start. The peer is installed from PyPI into
``bench/.peers/agentsniff`` on first use (never committed).

    python bench/scan/run.py [--rounds 1] [--peer-detectors all|active]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.discovery import mocks  # noqa: E402
from tests.discovery.servers import serve  # noqa: E402

PEER_DIR = ROOT / "bench" / ".peers" / "agentsniff"
PEER_VERSION = "1.3.0"
ACTIVE = "port_scanner,endpoint_prober,mcp_detector,agentpin_prober,tls_fingerprint,sse_detector"


def peer() -> Path:
    exe = PEER_DIR / "bin" / "agentsniff"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_DIR)], check=True)
        subprocess.run([str(PEER_DIR / "bin" / "pip"), "install", "-q", f"agentsniff=={PEER_VERSION}"], check=True)
    return exe


def run_peer(exe: Path, hosts: list[str], work: Path, detectors: str | None) -> tuple[float, set[str]]:
    cfg = work / "agentsniff.yaml"
    cfg.write_text("port_scan_ports: [" + ", ".join(map(str, mocks.PORTS)) + "]\n")
    out = work / "agentsniff.json"
    cmd = [str(exe), "scan", "--hosts", ",".join(hosts), "--config", str(cfg), "--format", "json", "--output", str(out)]
    cmd += ["--db", str(work / "agentsniff.db"), "-q"]
    if detectors:
        cmd += ["--detectors", detectors]
    started = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    elapsed = time.perf_counter() - started
    doc = json.loads(out.read_text()) if out.exists() else {"agents": []}
    return elapsed, {a.get("ip_address") or a.get("host") for a in doc.get("agents", [])}


def run_ours(hosts: list[str], work: Path) -> tuple[float, set[tuple[str, int]]]:
    out = work / "agentwatch.json"
    exe = Path(sys.executable).parent / "agentwatch"
    cmd = [
        str(exe),
        "scan",
        ",".join(hosts),
        "--ports",
        ",".join(map(str, mocks.PORTS)),
        "--format",
        "json",
        "-o",
        str(out),
    ]
    env = {**os.environ, "AGENTWATCH_DISCOVERY__CONNECT_TIMEOUT": "1.0", "AGENTWATCH_DISCOVERY__READ_TIMEOUT": "3.0"}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300)
    elapsed = time.perf_counter() - started
    doc = json.loads(out.read_text())
    return elapsed, {(a["ip_address"], a["port"]) for a in doc["agents"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1, help="agentsniff needs minutes per round")
    ap.add_argument("--peer-detectors", choices=["all", "active"], default="active")
    args = ap.parse_args()
    exe = peer()
    hosts = mocks.HOSTS
    agent_hosts = {e.host for e in mocks.AGENTS}
    expected = {(e.host, e.port) for e in mocks.AGENTS}
    decoys = set(mocks.DECOYS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fleet = mocks.fleet(work)
        with serve(fleet.specs):
            peer_times, our_times = [], []
            peer_found: set[str] = set()
            our_found: set[tuple[str, int]] = set()
            for _ in range(args.rounds):
                t, found = run_peer(exe, hosts, work, None if args.peer_detectors == "all" else ACTIVE)
                peer_times.append(t)
                peer_found = found
                t, ours = run_ours(hosts, work)
                our_times.append(t)
                our_found = ours
    p_time, o_time = statistics.median(peer_times), statistics.median(our_times)
    p_hits, p_fp = len(peer_found & agent_hosts), len(peer_found & decoys)
    o_hits = len(our_found & expected)
    o_fp = len({h for h, _ in our_found} & decoys)
    rows = [
        ("agentsniff 1.3.0", p_time, p_hits, p_fp),
        ("agentwatch", o_time, o_hits, o_fp),
    ]
    lines = [
        f"Fleet: {len(mocks.AGENTS)} mock agents + {len(decoys)} decoys on {len(hosts)} loopback addresses, "
        f"{len(mocks.PORTS)} ports; median of {args.rounds} round(s); peer detectors: {args.peer_detectors}",
        "",
        "| scanner | wall time (s) | agents found | false positives |",
        "|---|---:|---:|---:|",
    ]
    for name, t, hits, fp in rows:
        lines.append(f"| {name} | {t:.2f} | {hits}/{len(mocks.AGENTS)} | {fp}/{len(decoys)} |")
    lines += ["", f"speed-up (agentsniff time / agentwatch time): **{p_time / o_time:.1f}x**"]
    missed = sorted(agent_hosts - peer_found, key=lambda h: int(h.rsplit(".", 1)[1]))
    flagged = sorted(peer_found & decoys, key=lambda h: int(h.rsplit(".", 1)[1]))
    lines += [f"agentsniff missed: {', '.join(missed) or 'none'}; reported decoys: {', '.join(flagged) or 'none'}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
