"""The agentsniff API: network scans, their results and history, the agent inventory, alert settings.

Routes (agentsniff's documented paths and shapes, plus inventory fields):
``POST /api/scan``, ``POST /api/scan/stop``, ``GET /api/scan/status``,
``GET /api/scan/results``, ``GET /api/scan/history``, ``GET /api/scan/stream``
(SSE with ``event:`` names), ``GET /api/scan/{scan_id}``, ``GET /api/agents``,
``GET/PUT /api/settings``, ``POST /api/settings/test``.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from agentwatch.api.bodies import read_limited
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound, Unavailable
from agentwatch.api.security import principal_name, require
from agentwatch.api.sse import data_line
from agentwatch.api.wsframes import RECHECK_S, current_principal
from agentwatch.discovery import alerting, inventory
from agentwatch.discovery.allowlist import TargetError
from agentwatch.discovery.manager import CHANNEL, ScanBusy, ScanManager
from agentwatch.discovery.scanner import DetectorError
from agentwatch.notify import deliver
from agentwatch.processes.places import Place, places_of

router = APIRouter(tags=["discovery"])

UUID_RE = re.compile(r"^[0-9a-fA-F-]{36}$")
MAX_SETTINGS_BODY = 64 * 1024
SSE_HEARTBEAT_S = 15.0
NetworkQ = Annotated[str | None, Query(max_length=4096, description="CIDR or comma-separated addresses")]
HostsQ = Annotated[str | None, Query(max_length=4096, description="comma-separated addresses (agentsniff form)")]
DetectorsQ = Annotated[str | None, Query(max_length=1024, description="comma-separated detector names")]


def _manager(request: Request) -> ScanManager:
    return request.app.state.aw.components["discovery"]


def _tenant(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return getattr(principal, "tenant", "default") or "default"


def _target(network: str | None, hosts: str | None) -> str:
    text = ",".join(t for t in (network, hosts) if t)
    if not text:
        raise InvalidRequest("network: is required (a CIDR or a comma-separated list of addresses)")
    return text


async def _begin(request: Request, network: str | None, hosts: str | None, detectors: str | None) -> Any:
    mgr = _manager(request)
    try:
        if network and hosts:  # each named in its own errors first; then together (the host cap)
            mgr.check_target(hosts, detectors, field="hosts")
        field = "hosts" if hosts and not network else "network"
        return await mgr.begin(
            _target(network, hosts),
            detectors,
            tenant=_tenant(request),
            who=principal_name(request, "unknown"),
            field=field,
        )
    except (TargetError, DetectorError) as exc:
        raise InvalidRequest(str(exc)) from None
    except ScanBusy as exc:
        raise Conflict(f"scan: {exc}", {"scan_id": exc.scan_id}) from None


@router.post("/api/scan", dependencies=[require("scans:run")])
async def start_scan(
    request: Request, network: NetworkQ = None, hosts: HostsQ = None, detectors: DetectorsQ = None
) -> dict:
    run = await _begin(request, network, hosts, detectors)
    return {"scan_id": run.scan_id, "status": "started", "network": run.target, "detectors": run.detectors}


@router.post("/api/scan/stop", dependencies=[require("scans:run")])
async def stop_scan(request: Request) -> dict:
    stopped = await _manager(request).stop_scan(_tenant(request))
    if stopped is None:
        raise Conflict("scan: no scan is running")
    return {"status": "cancelled", **stopped}


@router.get("/api/scan/status", dependencies=[require("scans:read")])
async def scan_status(request: Request) -> dict:
    mgr = _manager(request)
    running = await mgr.status(_tenant(request))
    if running is not None:
        return {"status": "running", **running}
    latest = await run_in_threadpool(mgr.latest, _tenant(request))
    if latest is None:
        return {"status": "idle", "message": "No scan in progress or completed"}
    return {
        "status": "idle",
        "last_scan": {
            k: latest.get(k) for k in ("scan_id", "status", "started_at", "completed_at", "target_network", "summary")
        },
    }


@router.get("/api/scan/results", dependencies=[require("scans:read")])
async def scan_results(request: Request) -> dict:
    latest = await run_in_threadpool(_manager(request).latest, _tenant(request))
    if latest is None:
        raise NotFound("scan: no completed scan yet")
    return latest


@router.get("/api/scan/history", dependencies=[require("scans:read")])
async def scan_history(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict:
    total, scans = await run_in_threadpool(_manager(request).history, _tenant(request), limit, offset)
    return {"scans": scans, "count": len(scans), "total": total, "limit": limit, "offset": offset}


def _frame(event: str, data: Any, seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\n".encode() + data_line(orjson.dumps(data)) + b"\n\n"


async def _still_allowed(request: Request) -> bool:
    """Whether the stream's credential still grants ``scans:read`` (a key revoked, a user
    disabled or demoted since it began: no, and the stream ends)."""
    principal = await current_principal(request)
    return principal is not None and principal.can("scans:read")


@router.get("/api/scan/stream", dependencies=[require("scans:read")])
async def scan_stream(
    request: Request, network: NetworkQ = None, hosts: HostsQ = None, detectors: DetectorsQ = None
) -> StreamingResponse:
    """Live scan events. With ``network=`` it starts a scan (needs ``scans:run``) and ends after it.
    At most ``live.max_clients`` streams at once in the whole server (each holds a hub
    subscription and its buffer)."""
    aw = request.app.state.aw
    tenant = _tenant(request)
    place = places_of(aw, "scan_stream", aw.settings.live.max_clients).take()
    if place is None:
        raise Unavailable("stream: too many live clients", headers={"Retry-After": "5"})
    sub = aw.hub.subscribe({CHANNEL}, predicate=lambda _c, item: item.get("tenant") == tenant)
    watch: str | None = None
    try:
        if network or hosts:
            principal = getattr(request.state, "principal", None)
            if principal is not None and not principal.can("scans:run"):
                raise ApiError("permission 'scans:run' required to start a scan", status=403)
            watch = (await _begin(request, network, hosts, detectors)).scan_id
    except BaseException:
        _let_go(aw.hub, sub, place)
        raise

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            last_beat = time.monotonic()
            next_check = last_beat + RECHECK_S
            while True:
                wait = max(0.0, min(last_beat + SSE_HEARTBEAT_S, next_check) - time.monotonic())
                batch = await sub.next_batch(timeout=wait)
                if time.monotonic() >= next_check:  # the credential may have been revoked since
                    if not await _still_allowed(request):
                        return
                    next_check = time.monotonic() + RECHECK_S
                if not batch:
                    if await request.is_disconnected():
                        return
                    if time.monotonic() - last_beat >= SSE_HEARTBEAT_S:
                        yield b": ping\n\n"
                        last_beat = time.monotonic()
                    continue
                for seq, _channel, item in batch:
                    yield _frame(item["event"], item["data"], seq)
                    if watch and item["scan_id"] == watch and item["event"] in ("scan_complete", "scan_error"):
                        return
        finally:
            _let_go(aw.hub, sub, place)

    body = frames()
    weakref.finalize(body, _let_go, aw.hub, sub, place)  # a client gone before the first frame
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _let_go(hub: Any, sub: Any, place: Place) -> None:
    """End a scan stream's subscription and give back its place (again: nothing)."""
    hub.unsubscribe(sub)
    place.release()


@router.get("/api/agents", dependencies=[require("scans:read")])
async def list_agents(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    include_gone: bool = False,
    source: Annotated[str | None, Query(pattern="^(scan|telemetry)$")] = None,
) -> dict:
    aw = request.app.state.aw
    total, agents = await run_in_threadpool(
        inventory.list_agents, aw.engine, limit=limit, offset=offset, include_gone=include_gone, source=source
    )
    return {"agents": agents, "count": len(agents), "total": total}


@router.get("/api/scan/{scan_id}", dependencies=[require("scans:read")])
async def get_scan(request: Request, scan_id: str) -> dict:
    if not UUID_RE.fullmatch(scan_id):
        raise NotFound(f"scan {scan_id[:64]!r} not found")
    doc = await run_in_threadpool(_manager(request).get, _tenant(request), scan_id)
    if doc is None:
        raise NotFound(f"scan {scan_id!r} not found")
    return doc


# -- alert settings -----------------------------------------------------------------


@router.get("/api/settings", dependencies=[require("settings:read")])
async def get_settings(request: Request) -> dict:
    stored = await run_in_threadpool(_manager(request).alert_settings)
    return alerting.masked(stored)


@router.put("/api/settings", dependencies=[require("settings:write")])
async def put_settings(request: Request) -> dict:
    mgr = _manager(request)
    raw = await read_limited(request, MAX_SETTINGS_BODY)
    try:
        update = alerting.AlertSettingsUpdate.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        raise InvalidRequest(f"{where}: {err.get('msg', 'invalid')}") from None
    stored = await run_in_threadpool(mgr.alert_settings)
    new, changed = alerting.merge(stored, update)
    try:
        await asyncio.to_thread(mgr.notifiers, new)  # validates every output (and resolves their hosts)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if changed:
        await run_in_threadpool(mgr.save_alert_settings, new, changed, principal_name(request, "unknown"))
        request.state.audit_details = {"changed": changed}  # into this request's hash-chained audit row
    return {"updated": changed, "count": len(changed), "settings": alerting.masked(new)}


@router.post("/api/settings/test", dependencies=[require("settings:write")])
async def test_settings(request: Request) -> dict:
    mgr = _manager(request)
    try:
        outputs = await asyncio.to_thread(mgr.notifiers)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if not outputs:
        raise InvalidRequest("outputs: no alert output configured (set webhook_url or outputs)")
    results = await deliver(outputs, [alerting.test_alert()])
    return {"outcomes": results, "ok": all(r["ok"] for r in results)}
