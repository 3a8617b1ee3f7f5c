"""What the access layer costs: per-request authentication, request auditing, audit chain speed.

Run alone from the repository root: ``python bench/auth/run.py [--requests N]``. Servers are
real (uvicorn on loopback, SQLite in a temporary directory); there is no external peer for
this part, so the baseline is agentwatch itself with authentication / auditing off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.server import run_server  # noqa: E402

from agentwatch.config import Settings  # noqa: E402
from agentwatch.soc.audit import AuditEntry, AuditLog  # noqa: E402
from agentwatch.store.engine import make_engine, migrate  # noqa: E402

PASSWORD = "correct horse battery staple"
EVENT = {"event_type": "process.exec", "process": {"pid": 1, "name": "bench"}, "data": {"exe": "/bin/bench"}}
QUIET = {"detection": {"atr_bundled": False, "pack": False}, "log_level": "WARNING"}


def settings(tmp: Path, **auth: object) -> Settings:
    cfg = {"enabled": True, "open_ingest_on_loopback": False, "rate_limit": {"enabled": False}, **auth}
    return Settings(data_dir=tmp, auth=cfg, **QUIET)


def drive(url: str, method: str, path: str, headers: dict[str, str], n: int, workers: int = 4) -> float:
    """Requests per second over ``n`` requests from ``workers`` threads."""

    def one(client: httpx.Client) -> None:
        r = client.request(method, path, json=EVENT if method == "POST" else None)
        assert r.status_code == 200, r.text

    clients = [httpx.Client(base_url=url, headers=headers, timeout=30) for _ in range(workers)]
    try:
        for c in clients:
            one(c)  # warm up connections and caches
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: one(clients[i % workers]), range(n)))
        return n / (time.perf_counter() - started)
    finally:
        for c in clients:
            c.close()


def http_rows(n: int) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    off = {"enabled": False, "audit": {"requests": False}}
    with tempfile.TemporaryDirectory() as d1, run_server(settings(Path(d1), **off)) as srv:
        base_get = drive(srv.url, "GET", "/api/events?limit=1", {}, n)
        base_post = drive(srv.url, "POST", "/api/v1/ingest", {}, n)
    rows.append(("GET /api/events, auth off", base_get, "baseline"))
    with tempfile.TemporaryDirectory() as d2, run_server(settings(Path(d2))) as srv:
        auth = srv.aw.auth
        user = auth.users.create("bench@example.com", PASSWORD, "admin")
        _, key = auth.keys.create(owner_id=user.id, created_by="bench", name="b", scopes=["admin"], expires_at=None)
        token = httpx.post(
            srv.url + "/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
        ).json()["access_token"]
        for label, headers in (("API key", {"X-API-Key": key}), ("JWT", {"Authorization": f"Bearer {token}"})):
            rps = drive(srv.url, "GET", "/api/events?limit=1", headers, n)
            rows.append((f"GET /api/events, {label}", rps, f"{rps / base_get:.2f}x"))
        rows.append(("POST /api/v1/ingest, auth+audit off", base_post, "baseline"))
        rps = drive(srv.url, "POST", "/api/v1/ingest", {"X-API-Key": key}, n)
        rows.append(("POST /api/v1/ingest, API key + audit row", rps, f"{rps / base_post:.2f}x"))
    return rows


def audit_rows(n: int) -> list[tuple[str, float, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        engine = make_engine(f"sqlite:///{d}/a.db")
        migrate(engine)
        log = AuditLog(engine)
        started = time.perf_counter()
        for i in range(n // 10):
            log.append(AuditEntry("bench.one", "user", "u", "u", target=f"/x/{i}", status=200))
        one = (n // 10) / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(n // 100):
            log.append_many([AuditEntry("bench.group", "user", "u", "u", target=f"/y/{i}") for _ in range(100)])
        grouped = (n // 100 * 100) / (time.perf_counter() - started)
        started = time.perf_counter()
        result = log.verify()
        verify = result.checked / (time.perf_counter() - started)
        assert result.ok
        engine.dispose()
    rows.append(("audit append, 1 row per transaction", one, "baseline"))
    rows.append(("audit append, 100 rows per transaction (group commit)", grouped, f"{grouped / one:.1f}x"))
    rows.append(("audit verify (rows per second)", verify, "-"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--audit-rows", type=int, default=20000)
    args = ap.parse_args()
    rows = http_rows(args.requests) + audit_rows(args.audit_rows)
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'per second':>11}  ratio")
    for name, rate, ratio in rows:
        print(f"{name:<{width}}  {rate:>11.0f}  {ratio}")


if __name__ == "__main__":
    main()
