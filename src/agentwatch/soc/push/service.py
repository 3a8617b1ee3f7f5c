"""The push lifecycle part (``aw.components["push"]``) and the ``push`` alert output.

New alerts at or above ``push.min_severity`` are queued (the alert outputs' bounded queue, so
ingest never waits on a push service) and pushed to every subscription whose owner may read
alerts (``alerts:read``) now: a disabled or deleted user, or one whose role lost the
permission, gets nothing, though their subscriptions stay until removed."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import structlog

from agentwatch.detect.component import OutputQueue
from agentwatch.notify import NotifyError, reaches
from agentwatch.soc.push import message, store
from agentwatch.soc.push.sender import Sender
from agentwatch.soc.push.vapid import Vapid, load_or_create

log = structlog.get_logger("agentwatch.push")
LOCAL = "local:local"  # the owner of subscriptions made without authentication


def may_read_alerts(aw: Any, owner: str) -> bool:
    """Whether ``owner`` (``user:<id>``, or ``local:local``) may read alerts as of now."""
    if owner == LOCAL:
        return not aw.settings.auth.enabled
    kind, _, user_id = owner.partition(":")
    auth = getattr(aw, "auth", None)
    if kind != "user" or auth is None:
        return False
    user = auth.users.get(user_id)
    if user is None or user.disabled:
        return False
    perms = auth.roles.permissions_of(user.role)
    return "admin" in perms or "alerts:read" in perms


@dataclass
class PushOutput:
    """The ``push`` alert output: each alert, as its id, title and severity, to every
    subscribed user who may read alerts."""

    service: PushService
    min_severity: int
    kind: str = "push"
    name: str = "push"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "min_severity": self.min_severity}

    async def send(self, alerts: list[dict]) -> None:
        results = await self.service.push_alerts(alerts)
        failed = [r for r in results if not r["ok"]]
        if failed:
            raise NotifyError(f"push: {len(failed)} of {len(results)} pushes failed ({failed[0]['error']})")


class PushService:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.settings = aw.settings.push
        self._vapid: Vapid | None = None
        self._sender: Sender | None = None
        self._lock = threading.Lock()
        self.output = PushOutput(self, self.settings.min_severity)
        self.deliveries: list[dict[str, Any]] = []
        self.queue = OutputQueue(self.output, self._delivered)
        if self.settings.enabled:
            aw.alerts.listeners.append(self.route)

    @property
    def vapid(self) -> Vapid:
        """The server's VAPID identity, its key made on first use."""
        with self._lock:
            if self._vapid is None:
                self._vapid = Vapid(load_or_create(self.aw.settings.data_dir), self.settings.subject)
            return self._vapid

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(self.settings, self.vapid)
        return self._sender

    def _delivered(self, results: list[dict[str, Any]]) -> None:
        self.deliveries = [*self.deliveries, *results][-100:]

    async def route(self, alerts: list[dict[str, Any]]) -> None:
        """Alert listener: queue the new alerts severe enough to push."""
        chosen = [a for a in alerts if reaches(a, self.output)]
        if chosen:
            self.queue.add(chosen)

    async def push(self, rows: list[Any], payload: bytes, urgency: str) -> list[dict[str, Any]]:
        """Push ``payload`` to ``rows`` and record the answers (removing the gone)."""
        if not rows:
            return []
        await asyncio.to_thread(lambda: self.vapid)  # the key file is read (or made) off the loop
        results = await self.sender.send(rows, payload, urgency)
        answers = [(r["id"], r["status"], r["removed"]) for r in results]
        await asyncio.to_thread(store.record, self.aw.engine, answers)
        return results

    async def push_alerts(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(self._readers_targets)
        results: list[dict[str, Any]] = []
        for alert in alerts:
            results += await self.push(rows, message.alert_payload(alert), "high")
            gone = {r["id"] for r in results if r["removed"]}
            rows = [r for r in rows if r.id not in gone]
        return results

    def _readers_targets(self) -> list[Any]:
        rows = store.targets(self.aw.engine)
        allowed = {owner: may_read_alerts(self.aw, owner) for owner in {r.owner for r in rows}}
        return [r for r in rows if allowed[r.owner]]

    async def test(self, owner: str) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.targets, self.aw.engine, owner)
        return await self.push(rows, message.test_payload(), "normal")

    async def stop(self) -> None:
        sender = self.queue.sender
        if sender is not None and not sender.done():
            await asyncio.wait([sender], timeout=10)
