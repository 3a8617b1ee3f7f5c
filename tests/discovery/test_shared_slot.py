"""One running scan per tenant across processes: the claim, status, stop and schedule go through the store.

Most tests put two ``ScanManager``s (as two server processes would hold) on one store, on SQLite
and PostgreSQL; the last one starts the real ``agentwatch serve --processes 2``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from agentwatch.discovery import slots
from agentwatch.discovery.manager import ScanBusy, ScanManager
from agentwatch.discovery.schema import scan_slots, scans
from tests.discovery.conftest import fast_settings
from tests.discovery.servers import Spec, serve
from tests.processes.test_serve_processes import serve as serve_processes
from tests.processes.test_serve_processes import stop as stop_processes

TARPIT = "127.0.0.33"  # accepts and never answers: a scan of it runs for seconds


async def _tarpit(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def tarpit():
    with serve([Spec(TARPIT, 8000, raw=_tarpit)]):
        yield


class _Alerts:
    async def record(self, findings: list[Any]) -> list[Any]:
        return []


def process(engine: Any, *, slow: bool = True) -> ScanManager:
    """A manager as one server process holds it, on the shared store (``slow``: the tarpit holds it)."""
    discovery = fast_settings(connect_timeout=5.0, read_timeout=20.0, banner_timeout=0.0) if slow else fast_settings()
    aw = SimpleNamespace(
        engine=engine,
        settings=SimpleNamespace(discovery=discovery),
        hub=SimpleNamespace(publish=lambda _channel, _item: None),
        pipeline=SimpleNamespace(commit_hooks=[]),
        alerts=_Alerts(),
    )
    return ScanManager(aw)


def _row(engine: Any, scan_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(scans).where(scans.c.scan_id == scan_id)).mappings().one())


def test_two_processes_cannot_run_two_scans_of_one_tenant(engine, tarpit):
    async def main() -> None:
        a, b = process(engine), process(engine)
        run = await a.begin(TARPIT, None, tenant="t1", who="a")
        with pytest.raises(ScanBusy) as busy:
            await b.begin("127.0.0.2", None, tenant="t1", who="b")
        assert busy.value.scan_id == run.scan_id and not b.running
        other = await b.begin("127.0.0.2", None, tenant="t2", who="b")  # another tenant is free
        await a.stop_scan("t1")
        await other.done.wait()
        again = await b.begin(TARPIT, None, tenant="t1", who="b")  # free again once it ended
        await b.stop_scan("t1")
        assert again.scan_id != run.scan_id

    asyncio.run(main())


def test_claims_made_at_the_same_moment_have_exactly_one_winner(engine):
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    gate = threading.Barrier(8)
    won: list[str] = []
    lost: list[str | None] = []

    def contender(i: int) -> None:
        claim = slots.Claim(tenant, str(uuid.uuid4()), f"owner{i}", "127.0.0.2", ["port_scanner"], time.time(), 1)
        gate.wait()
        try:
            slots.claim(engine, claim)
            won.append(claim.scan_id)
        except slots.Taken as taken:
            lost.append(taken.scan_id)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    assert set(lost) == {won[0]}  # every loser is told which scan runs
    with engine.connect() as conn:
        running = conn.execute(select(scans.c.scan_id).where(scans.c.tenant == tenant)).scalars().all()
    assert running == won


def test_status_and_stop_work_from_the_other_process(engine, tarpit):
    async def main() -> None:
        a, b = process(engine), process(engine)
        assert await b.status("t1") is None
        run = await a.begin(TARPIT, None, tenant="t1", who="a")
        seen = await b.status("t1")
        assert seen is not None
        assert set(seen) == {"scan_id", "target_network", "detectors", "started_at", "progress"}
        assert seen["scan_id"] == run.scan_id and seen["target_network"] == TARPIT
        assert seen["detectors"] == run.detectors
        assert seen["progress"] == {"hosts_done": 0, "hosts_total": 1, "agents_found": 0}
        assert seen == await a.status("t1")
        started = time.monotonic()
        stopped = await b.stop_scan("t1")
        assert stopped == {"scan_id": run.scan_id, "stopped": True}
        assert time.monotonic() - started < 1.5
        # the store said so first: the owner's own task sets ``done`` once its last write returns
        await asyncio.wait_for(run.done.wait(), 1.0)
        assert not a.running
        assert await a.status("t1") is None and await b.status("t1") is None
        row = _row(engine, run.scan_id)
        assert row["status"] == "stopped" and json.loads(row["body"])["error"] == "scan stopped"
        assert await b.stop_scan("t1") is None and await a.stop_scan("t1") is None

    asyncio.run(main())


def test_health_counts_the_scans_of_every_process(engine, tarpit):
    async def main() -> None:
        a, b = process(engine), process(engine)
        assert b.health()["scanner"]["status"] == "idle"
        slow = await a.begin(TARPIT, None, tenant="t1", who="a")
        seen = b.health()["scanner"]  # the other process answers for the scan a runs
        assert seen["status"] == "scanning" and seen["running_scans"] == 1
        quick = await a.begin("127.0.0.2", None, tenant="t2", who="a")
        await quick.done.wait()
        assert quick.result["status"] == "completed"
        await a.stop_scan("t1")  # a stopped scan is not a completed one
        after = b.health()["scanner"]
        assert after["status"] == "idle" and after["running_scans"] == 0
        assert after["last_scan_id"] == quick.scan_id != slow.scan_id
        assert after["last_scan_completed_at"] == quick.result["completed_at"]

    asyncio.run(main())


def _dead_scan(engine: Any, tenant: str) -> str:
    """A scan claimed by a process that then died: its heartbeat a minute old."""
    scan_id = str(uuid.uuid4())
    slots.claim(engine, slots.Claim(tenant, scan_id, "gone", TARPIT, ["port_scanner"], time.time() - 60, 1))
    with engine.begin() as conn:
        conn.execute(update(scan_slots).where(scan_slots.c.tenant == tenant).values(heartbeat_at=time.time() - 60))
    return scan_id


def test_a_stale_slot_is_taken_over_and_its_scan_ended_interrupted(engine, fleet):
    async def main() -> None:
        b = process(engine)
        dead = _dead_scan(engine, "t1")
        assert await b.stop_scan("t1") is None  # nobody is there to stop it
        run = await b.begin("127.0.0.2", None, tenant="t1", who="b")
        assert run.scan_id != dead
        row = _row(engine, dead)
        assert row["status"] == "interrupted" and row["completed_at"] is not None
        assert json.loads(row["body"])["error"] == slots.INTERRUPTED
        await run.done.wait()
        assert _row(engine, run.scan_id)["status"] == "completed"

    asyncio.run(main())


def test_a_stale_slot_reads_as_idle_and_its_scan_is_ended(engine):
    async def main() -> None:
        dead = _dead_scan(engine, "t3")
        assert await process(engine).status("t3") is None
        assert _row(engine, dead)["status"] == "interrupted"
        assert slots.running_scan(engine, "t3") is None

    asyncio.run(main())


def test_the_schedule_of_two_processes_starts_one_scan_per_period(engine, fleet):
    async def main() -> None:
        a, b = process(engine, slow=False), process(engine, slow=False)
        loops = [
            asyncio.create_task(a._scheduled("127.0.0.2", 2.0)),
            asyncio.create_task(b._scheduled("127.0.0.2", 2.0)),
        ]
        await asyncio.sleep(5.0)  # periods starting at 0, 2 and 4 s
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for mgr in (a, b):
            for run in list(mgr.running.values()):
                await run.done.wait()
        with engine.connect() as conn:
            started = conn.execute(select(scans.c.started_at).where(scans.c.tenant == "default")).scalars().all()
        assert len(started) == 3, sorted(started)

    asyncio.run(main())


def test_serve_with_two_processes_runs_one_scan_and_answers_alike_on_both(tmp_path, database_url, tarpit):
    served = serve_processes(
        tmp_path,
        database_url,
        "--processes",
        "2",
        env={
            "AGENTWATCH_DISCOVERY__PORTS": "[8000]",
            "AGENTWATCH_DISCOVERY__CONNECT_TIMEOUT": "5",
            "AGENTWATCH_DISCOVERY__READ_TIMEOUT": "20",
            "AGENTWATCH_DISCOVERY__BANNER_TIMEOUT": "0",
        },
    )
    try:
        assert len(served.pids_seen(2)) == 2
        first = served.post("/api/scan", params={"network": TARPIT})  # every request: a new connection
        assert first.status_code == 200, first.text
        scan_id = first.json()["scan_id"]
        for _ in range(10):
            again = served.post("/api/scan", params={"network": TARPIT})
            assert again.status_code == 409 and again.json()["error"]["details"]["scan_id"] == scan_id
            status = served.get("/api/scan/status").json()
            assert status["status"] == "running" and status["scan_id"] == scan_id
        stopped = served.post("/api/scan/stop")
        assert stopped.status_code == 200 and stopped.json()["scan_id"] == scan_id
        deadline = time.monotonic() + 10
        while served.get("/api/scan/status").json()["status"] != "idle":
            assert time.monotonic() < deadline, "the scan did not stop"
            time.sleep(0.05)
        for _ in range(6):
            status = served.get("/api/scan/status").json()
            assert status["status"] == "idle" and status["last_scan"]["status"] == "stopped"
            assert served.post("/api/scan/stop").status_code == 409
    finally:
        stop_processes(served)


def test_a_stop_at_once_after_the_start_does_not_wedge_the_tenant(engine, tarpit):
    async def main() -> None:
        a = process(engine)
        run = await a.begin(TARPIT, None, tenant="t1", who="a")
        stopped = await a.stop_scan("t1")  # no other await in between
        assert stopped == {"scan_id": run.scan_id, "stopped": True}
        assert await a.status("t1") is None and _row(engine, run.scan_id)["status"] == "stopped"
        again = await a.begin(TARPIT, None, tenant="t1", who="a")
        await a.stop_scan("t1")
        assert _row(engine, again.scan_id)["status"] == "stopped"

    asyncio.run(main())
