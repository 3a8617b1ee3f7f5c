"""The server side of discovery: one running scan per tenant, history, live events, schedule, alerts.

The tenant's running scan is claimed in the store (``discovery.slots``), so it is one scan for
every process and node sharing that store; this process keeps its own scans' tasks in ``running``.

Attached to the app as the lifecycle component ``discovery``. Live scan events go
to the hub channel ``scan`` as ``{"event": name, "tenant", "scan_id", "data"}``;
the SSE route turns them into ``event:`` frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from sqlalchemy import delete, func, select, update

from agentwatch.discovery import alerting, inventory, slots
from agentwatch.discovery.allowlist import Targets, parse_targets
from agentwatch.discovery.report import scan_result
from agentwatch.discovery.scanner import Scanner, resolve_detectors
from agentwatch.discovery.schema import scans as scans_t
from agentwatch.discovery.settings import DiscoverySettings
from agentwatch.discovery.telemetry import WATCHED, agents_from_events
from agentwatch.events.model import Event, iso
from agentwatch.notify import deliver
from agentwatch.store import kv

TELEMETRY_REFRESH_S = 60.0
log = structlog.get_logger("agentwatch.discovery")
CHANNEL = "scan"
STOP_WAIT_S = 1.0


class ScanBusy(RuntimeError):
    """A scan is already running for this tenant (``scan_id``, when known)."""

    def __init__(self, message: str, scan_id: str | None = None) -> None:
        super().__init__(message)
        self.scan_id = scan_id


@dataclass
class RunningScan:
    scan_id: str
    tenant: str
    target: str
    detectors: list[str]
    started_at: float
    hosts_total: int
    hosts_done: int = 0
    agents_found: int = 0
    task: asyncio.Task[Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    result: dict[str, Any] | None = None


def discovery_settings(aw: Any) -> DiscoverySettings:
    value = getattr(aw.settings, "discovery", None)
    return value if isinstance(value, DiscoverySettings) else DiscoverySettings()


class ScanManager:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.running: dict[str, RunningScan] = {}  # this process's scans; the store holds every one
        self.owner = uuid.uuid4().hex  # names this process in the tenants' scan slots
        self._schedule: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._recorded: dict[tuple[Any, ...], float] = {}  # telemetry sighting -> when written

    @property
    def settings(self) -> DiscoverySettings:
        return discovery_settings(self.aw)

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        self.aw.pipeline.commit_hooks.append(self.on_commit)
        s = self.settings
        if s.schedule_network and s.schedule_every_s:
            self._schedule = asyncio.create_task(self._scheduled(s.schedule_network, s.schedule_every_s))

    async def stop(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule
        for tenant in list(self.running):
            await self.stop_scan(tenant)
        for task in list(self._background):
            task.cancel()

    async def _scheduled(self, network: str, every: float) -> None:
        """Continuous mode on the server: scan ``network`` every ``every`` seconds (skip while one runs).
        Every process runs this loop; the claim in the store lets one of them start a period's scan."""
        while True:
            try:
                await self.begin(network, None, tenant="default", who="schedule", every=every)
            except ScanBusy:
                pass
            except ValueError:
                log.exception("discovery.schedule_invalid_target")
                return
            await asyncio.sleep(every)

    # -- scans -----------------------------------------------------------------
    def check_target(
        self, network: str, detectors: str | list[str] | None, *, field: str = "network"
    ) -> tuple[Targets, list[str], list[str]]:
        s = self.settings
        targets = parse_targets(network, allowed=s.allowed_networks, max_hosts=s.max_hosts, field=field)
        active, passive = resolve_detectors(detectors)
        return targets, active, passive

    async def begin(
        self,
        network: str,
        detectors: str | list[str] | None,
        *,
        tenant: str,
        who: str,
        field: str = "network",
        every: float | None = None,
    ) -> RunningScan:
        """Validate, claim the tenant's slot in the store and start a scan; raises ValueError (bad
        input, naming ``field``) or ScanBusy (409). ``every``: a scheduled scan, taking its turn."""
        targets, active, passive = self.check_target(network, detectors, field=field)
        if tenant in self.running:
            mine = self.running[tenant].scan_id
            raise ScanBusy(f"scan {mine} is already running", mine)
        run = RunningScan(str(uuid.uuid4()), tenant, targets.text, active, time.time(), len(targets.hosts()))
        # shielded: a request cancelled while the claim is written still starts the scan it claimed
        return await asyncio.shield(self._claim_and_start(run, targets, passive, who, every))

    async def _claim_and_start(
        self, run: RunningScan, targets: Targets, passive: list[str], who: str, every: float | None
    ) -> RunningScan:
        claim = slots.Claim(
            run.tenant, run.scan_id, self.owner, run.target, run.detectors, run.started_at, run.hosts_total
        )
        try:
            await asyncio.to_thread(slots.claim, self.aw.engine, claim, every=every)
        except slots.Taken as taken:
            if taken.scan_id is None:
                raise ScanBusy("the scheduled scan of this period already ran") from None
            raise ScanBusy(f"scan {taken.scan_id} is already running", taken.scan_id) from None
        self.running[run.tenant] = run
        run.task = asyncio.create_task(self._run(run, targets, passive, who), name=f"scan-{run.scan_id}")
        return run

    def _publish(self, run: RunningScan, event: str, data: Any) -> None:
        self.aw.hub.publish(CHANNEL, {"event": event, "tenant": run.tenant, "scan_id": run.scan_id, "data": data})

    async def _run(self, run: RunningScan, targets: Targets, passive: list[str], who: str) -> None:
        s = self.settings
        engine = self.aw.engine
        # The running row was written with the claim; the heartbeat keeps the slot alive and
        # brings a stop asked on another process.
        keep_alive = asyncio.create_task(self._keep_alive(run), name=f"scan-beat-{run.scan_id}")
        last_progress = 0.0

        def on_agent(agent: dict[str, Any]) -> None:
            run.agents_found += 1
            self._publish(run, "agent_detected", agent)

        def on_progress(done: int, total: int, agents: int) -> None:
            nonlocal last_progress
            run.hosts_done = done
            now = time.monotonic()
            if done == total or now - last_progress >= 0.25:
                last_progress = now
                self._publish(
                    run,
                    "progress",
                    {"scan_id": run.scan_id, "hosts_done": done, "hosts_total": total, "agents_found": agents},
                )

        status, error = "completed", None
        stats: dict[str, Any] = {}
        agents: list[dict[str, Any]] = []
        diff: dict[str, Any] | None = None
        try:
            self._publish(
                run, "scan_started", {"scan_id": run.scan_id, "detectors": run.detectors, "target": run.target}
            )
            log.info("discovery.scan_started", scan_id=run.scan_id, target=run.target, by=who)
            outcome = await Scanner(s, run.detectors).scan(
                targets, scan_id=run.scan_id, on_agent=on_agent, on_progress=on_progress
            )
            agents, stats = outcome.agents, outcome.stats
            if stats.get("services_failed"):
                log.warning("discovery.services_failed", scan_id=run.scan_id, errors=stats.get("service_errors"))
            diff = await asyncio.to_thread(
                inventory.apply_scan,
                engine,
                agents,
                scan_id=run.scan_id,
                targets=targets,
                ports=list(s.ports),
                detectors=run.detectors,
            )
        except asyncio.CancelledError:
            status, error = "stopped", "scan stopped"
        except Exception as exc:  # a scan failure is reported, never crashes the server
            log.exception("discovery.scan_failed", scan_id=run.scan_id)
            status, error = "failed", f"{type(exc).__name__}: scan failed"
        if passive:
            stats["detectors_unavailable"] = passive
        ended = time.time()
        result = scan_result(
            scan_id=run.scan_id,
            started_at=run.started_at,
            completed_at=ended,
            target=run.target,
            agents=agents,
            detectors=run.detectors,
            status=status,
            stats=stats,
            diff=diff,
            error=error,
        )
        run.result = result
        keep_alive.cancel()
        try:
            await asyncio.shield(asyncio.to_thread(self._finish, run, result, ended))
        finally:
            self.running.pop(run.tenant, None)
            run.done.set()
        if status == "completed":
            self._publish(run, "scan_complete", result)
            if diff:
                self._in_background(self._alert(diff, run.scan_id))
        else:
            self._publish(run, "scan_error", {"error": error, "scan_id": run.scan_id, "status": status})

    async def _keep_alive(self, run: RunningScan) -> None:
        """Refresh the slot's heartbeat and progress every BEAT_S; cancel the scan when a stop was
        asked (by any process) or the slot was taken over. A store error skips one beat."""
        while True:
            await asyncio.sleep(slots.BEAT_S)
            progress = {"hosts_done": run.hosts_done, "hosts_total": run.hosts_total, "agents_found": run.agents_found}
            try:
                verdict = await asyncio.to_thread(
                    slots.beat, self.aw.engine, run.tenant, run.scan_id, self.owner, progress
                )
            except Exception:
                log.warning("discovery.heartbeat_failed", scan_id=run.scan_id, exc_info=True)
                continue
            if verdict is None:
                log.warning("discovery.slot_lost", scan_id=run.scan_id)
            if verdict is not False and run.task is not None:
                run.task.cancel()
                return

    async def stop_scan(self, tenant: str) -> dict[str, Any] | None:
        """Stop the tenant's scan wherever it runs and wait for it (at most STOP_WAIT_S):
        ``{"scan_id", "stopped"}``, or None when none runs. This process's own scan is cancelled
        directly; another's is asked through the store, and its owner sees that at its next beat."""
        run = self.running.get(tenant)
        if run is not None and run.task is not None:
            run.task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.done.wait(), STOP_WAIT_S)
            return {"scan_id": run.scan_id, "stopped": run.done.is_set()}
        scan_id = await asyncio.to_thread(slots.request_stop, self.aw.engine, tenant)
        if scan_id is None:
            return None
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(slots.running_scan, self.aw.engine, tenant) != scan_id:
                return {"scan_id": scan_id, "stopped": True}
        return {"scan_id": scan_id, "stopped": False}

    async def status(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's running scan as documented (``scan_id``, ``target_network``, ``detectors``,
        ``started_at``, ``progress``), read from the store so every process answers alike; or None."""
        return await asyncio.to_thread(slots.status, self.aw.engine, tenant)

    async def running_scan_id(self, tenant: str) -> str | None:
        return await asyncio.to_thread(slots.running_scan, self.aw.engine, tenant)

    # -- persistence -----------------------------------------------------------
    def _finish(self, run: RunningScan, result: dict[str, Any], ended: float) -> None:
        keep = self.settings.history_keep
        with self.aw.engine.begin() as conn:
            slots.release(conn, run.tenant, run.scan_id)
            conn.execute(
                update(scans_t)
                .where(scans_t.c.scan_id == run.scan_id, scans_t.c.status == "running")
                .values(
                    completed_at=ended,  # the result's own time: the column and the body agree
                    status=result["status"],
                    total_agents=result["summary"]["total_agents"],
                    body=orjson.dumps(result).decode(),
                )
            )
            old = (
                conn.execute(
                    select(scans_t.c.scan_id)
                    .where(scans_t.c.tenant == run.tenant)
                    .order_by(scans_t.c.started_at.desc())
                    .offset(keep)
                )
                .scalars()
                .all()
            )
            if old:
                conn.execute(delete(scans_t).where(scans_t.c.scan_id.in_(old)))

    def history(self, tenant: str, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        with self.aw.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(scans_t).where(scans_t.c.tenant == tenant)
            ).scalar_one()
            rows = (
                conn.execute(
                    select(scans_t)
                    .where(scans_t.c.tenant == tenant)
                    .order_by(scans_t.c.started_at.desc())
                    .limit(limit)
                    .offset(offset)
                )
                .mappings()
                .all()
            )
        return total, [self._doc(r) for r in rows]

    def get(self, tenant: str, scan_id: str) -> dict[str, Any] | None:
        with self.aw.engine.connect() as conn:
            row = (
                conn.execute(select(scans_t).where(scans_t.c.scan_id == scan_id, scans_t.c.tenant == tenant))
                .mappings()
                .first()
            )
        return None if row is None else self._doc(row)

    def latest(self, tenant: str) -> dict[str, Any] | None:
        with self.aw.engine.connect() as conn:
            row = (
                conn.execute(
                    select(scans_t)
                    .where(scans_t.c.tenant == tenant, scans_t.c.status != "running")
                    .order_by(scans_t.c.started_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else self._doc(row)

    @staticmethod
    def _doc(row: Any) -> dict[str, Any]:
        body = orjson.loads(row["body"]) if row["body"] and row["body"] != "{}" else {}
        if not body:
            body = scan_result(
                scan_id=row["scan_id"], started_at=row["started_at"], completed_at=None, target=row["target"],
                agents=[], detectors=[], status=row["status"], stats={},
            )  # fmt: skip
        return body

    # -- alert settings and delivery -----------------------------------------------
    def alert_settings(self) -> dict[str, Any]:
        return {**alerting.DEFAULTS, **(kv.get(self.aw.engine, alerting.KV_KEY, {}) or {})}

    def save_alert_settings(self, new: dict[str, Any], changed: list[str], who: str) -> None:
        kv.put(self.aw.engine, alerting.KV_KEY, new)
        entries = kv.get(self.aw.engine, alerting.KV_LOG, []) or []
        entries.append({"at": iso(time.time()), "by": who, "changed": changed})
        kv.put(self.aw.engine, alerting.KV_LOG, entries[-alerting.LOG_KEEP :])
        log.info("audit.settings_changed", area="discovery.alerts", by=who, changed=changed)

    def notifiers(self, settings: dict[str, Any] | None = None) -> list[Any]:
        settings = settings if settings is not None else self.alert_settings()
        return alerting.build_notifiers(settings, allow_private=self.settings.notify_allow_private)

    async def _alert(self, diff: dict[str, Any], scan_id: str) -> list[dict[str, Any]]:
        settings = await asyncio.to_thread(self.alert_settings)
        findings = alerting.change_findings(diff, settings, scan_id=scan_id)
        if not findings:
            return []
        stored = await self.aw.alerts.record(findings)
        fresh = [a for a in stored if a.get("count") == 1]
        if settings.get("alert_enabled") and fresh:
            try:
                outputs = self.notifiers(settings)
            except ValueError:
                log.exception("discovery.outputs_invalid")
                return []
            results = await deliver(outputs, fresh)
            for r in results:
                if not r["ok"]:
                    log.warning("discovery.alert_delivery_failed", output=r["name"], error=r["error"])
            return results
        return []

    # -- telemetry -------------------------------------------------------------------
    async def on_commit(self, events: list[Event]) -> None:
        if not any(e.event_type in WATCHED for e in events):
            return
        seen = self._not_recent(agents_from_events(events))
        if not seen:
            return
        new = await asyncio.to_thread(inventory.record_telemetry, self.aw.engine, seen)
        if new:
            diff = {"new": [{**inventory.brief(a), "returned": False} for a in new]}
            # not awaited: this runs in the pipeline's commit loop, and a slow receiver (retried
            # for up to 30 s) would hold every later commit back
            self._in_background(self._alert(diff, "telemetry"))

    def _in_background(self, work: Any) -> None:
        """Run ``work`` (an alert and its delivery) apart; kept until done, cancelled on stop."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _not_recent(self, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The sightings that tell the inventory something: a new agent, new metadata or tools,
        or the first sighting of an agent for ``TELEMETRY_REFRESH_S`` (its ``last_seen``).
        A busy agent calling an LLM on every request is written once a minute, not per batch."""
        now = time.monotonic()
        out = []
        for agent in seen:
            lists = agent.get("metadata", {})
            caps = agent.get("mcp_capabilities") or {}
            sig = (
                agent["id"],
                tuple(sorted((k, tuple(v)) for k, v in lists.items() if isinstance(v, list))),
                tuple(t["name"] for t in caps.get("tools", [])),
            )
            if now - self._recorded.get(sig, -TELEMETRY_REFRESH_S) < TELEMETRY_REFRESH_S:
                continue
            if len(self._recorded) >= 10_000:
                self._recorded.clear()
            self._recorded[sig] = now
            out.append(agent)
        return out

    # -- health ------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        from agentwatch.discovery.probes.fingerprints import signatures

        shared = slots.scanner_health(self.aw.engine)
        return {
            "scanner": {
                "status": "scanning" if shared["running_scans"] else "idle",
                **shared,
                "schedule": {
                    "network": self.settings.schedule_network,
                    "every_seconds": self.settings.schedule_every_s,
                }
                if self._schedule is not None
                else None,
            },
            "signatures": {"status": "builtin", "frameworks": len(signatures())},
        }


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("discovery.alert_failed", error=type(task.exception()).__name__)
