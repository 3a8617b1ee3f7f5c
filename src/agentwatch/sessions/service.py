"""The sessions lifecycle component: stall checks, deletes and the optional second listener.

Stall is the one session rule that cannot be driven by events (it fires on their
absence), so a periodic task marks running sessions silent for ``stall_after_s``
(server receive time) as ``timeout`` and records a ``stall`` alert through the
shared alert recorder.

A delete runs between two of the pipeline's commits (it holds ``pipeline.commit_lock``), so
it never sees a batch of the session half done: the batch being committed when the delete
arrives is stored, derived and alerted on first, then deleted with the rest; a batch committed
after it starts a new session. A stall pass holds the same lock, so its alert is never
recorded for a session deleted in between. In a scale-out deployment the delete first waits
for the workers to commit every event accepted before it (``Pipeline.settled``): an API node
accepts events once the bus holds them, and a session deleted before they are stored would
come back with them.

With ``aop.compat_listener`` on, a second uvicorn server on ``aop.compat_port``
(default 4317, the original collector's port) serves the same AOP router, for
SDKs that assume that port. It shares this process's pipeline and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import structlog

from agentwatch.pipeline.pipeline import Finding
from agentwatch.sessions import queries
from agentwatch.sessions.rules import DETECTOR, SEVERITY, TITLES, rule_id
from agentwatch.store.writer_turns import turn_of

log = structlog.get_logger("agentwatch.sessions")


def stall_findings(rows: list[dict[str, Any]], stall_after_s: float) -> list[Finding]:
    out = []
    for row in rows:
        silent = time.time() - row["last_seen_at"]
        out.append(
            Finding(
                detector=DETECTOR,
                rule_id=rule_id("stall"),
                title=TITLES["stall"],
                severity=SEVERITY["stall"],
                events=[],
                alert_type="builtin",
                message=f"No event for {silent:.0f} s (limit {stall_after_s:g} s); session marked timeout",
                tags=["aop", "stall"],
                session_id=row["id"],
                ts=row["last_event_at"] + stall_after_s,
                details={"aop_type": "stall", "agent_id": row["agent_id"], "silent_s": round(silent, 1)},
            )
        )
    return out


def delete_now(aw: Any, session_id: str, recursive: bool) -> dict[str, Any] | None:
    """Delete a session (with ``recursive``, its descendants too) from the store and the caches;
    None for an unknown session. The caller keeps the pipeline from committing meanwhile."""
    if not queries.known(aw.engine, session_id):
        return None
    ids = queries.subtree(aw.engine, session_id) if recursive else [session_id]
    rules = getattr(aw, "aop_rules", None)
    forgotten = None
    alert_ids: list[str] = []
    # everything of the sessions goes at once, or nothing does; in the writers' turn, so another
    # process's commit that meets a long delete waits for its end, not in SQLite's busy handler
    with turn_of(aw.engine), aw.engine.begin() as conn:
        agents = queries.agents_of(conn, ids)  # read while their rows still say
        counts = queries.delete_sessions(conn, ids, alert_ids)
        if rules is not None:
            forgotten = rules.forget(conn, ids, agents)
    if forgotten is not None:
        forgotten()
    rows = getattr(aw, "aop_session_rows", None)
    if rows is not None:
        rows.evict(ids)
    return {"ok": True, "deleted": {**counts, "session_ids": ids}, "alert_ids": alert_ids}


class SessionService:
    """Registered at ``lifecycle["aop_sessions"]``; routes find it in ``aw.components``."""

    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.settings = aw.settings.aop
        self._stall_task: asyncio.Task[None] | None = None
        self._compat: Any = None
        self._compat_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stall_task = asyncio.create_task(self._stall_loop(), name="aop-stall")
        if self.settings.compat_listener:
            await self._start_compat()

    async def stop(self) -> None:
        if self._stall_task is not None:
            self._stall_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stall_task
        if self._compat is not None and self._compat_task is not None:
            self._compat.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._compat_task, 10)

    async def delete(self, session_id: str, recursive: bool) -> dict[str, Any] | None:
        """Delete a session between two commits (see the module's docstring), once every event
        accepted before the request is committed (scale-out: by the workers; raises NotSettled)."""
        await self.aw.pipeline.settled()

        async def between_commits() -> dict[str, Any] | None:
            async with self.aw.pipeline.commit_lock:
                done = await asyncio.to_thread(delete_now, self.aw, session_id, recursive)
                if done is not None:  # live clients hear of the alerts that went (the hub is the loop's)
                    for alert_id in done.pop("alert_ids"):
                        self.aw.hub.publish("alert_deleted", {"alert_id": alert_id})
                return done

        # shielded: a client that goes away must not let a commit in while the delete still runs
        return await asyncio.shield(between_commits())

    async def check_stalls(self) -> list[dict[str, Any]]:
        """One stall pass; returns the sessions it marked (also used by tests)."""
        cutoff = time.time() - self.settings.stall_after_s
        async with self.aw.pipeline.commit_lock:  # marked and alerted on with no delete in between
            rows = await asyncio.to_thread(queries.stall, self.aw.engine, cutoff)
            if rows:
                await self.aw.alerts.record(stall_findings(rows, self.settings.stall_after_s))
        return rows

    async def _stall_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stall_check_interval_s)
            try:
                await self.check_stalls()
            except Exception:
                log.exception("sessions.stall_check_failed")

    async def _start_compat(self) -> None:
        import uvicorn
        from fastapi import FastAPI

        from agentwatch.api import aop, errors
        from agentwatch.api.responses import JSON
        from agentwatch.api.security import check_routes
        from agentwatch.api.serving import uvicorn_options

        app = FastAPI(title="agentwatch AOP collector", default_response_class=JSON, openapi_url=None)
        app.state.aw = self.aw
        errors.install(app)
        for _name, install in self.aw.registry.middleware.items():
            install(app, self.aw)
        app.include_router(aop.router)
        check_routes(app)
        config = uvicorn.Config(
            app, host=self.aw.settings.host, port=self.settings.compat_port, lifespan="off", **uvicorn_options()
        )
        try:
            sock = socket.create_server((self.aw.settings.host, self.settings.compat_port), reuse_port=False)
        except OSError as exc:  # port taken: the main server keeps running without it
            log.error("sessions.compat_listener_failed", port=self.settings.compat_port, error=str(exc))
            return
        self._compat = uvicorn.Server(config)
        # _serve, not serve: the main server owns the process's signal handlers.
        self._compat_task = asyncio.create_task(self._compat._serve(sockets=[sock]), name="aop-compat-listener")
        deadline = time.monotonic() + 10
        while not self._compat.started and not self._compat_task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._compat.started:
            log.info("sessions.compat_listener", port=self.settings.compat_port)
        else:
            log.error("sessions.compat_listener_failed", port=self.settings.compat_port)
