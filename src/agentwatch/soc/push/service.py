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
MAX_ALERT_PUSHES = 5  # alerts of one delivery pushed one by one; the rest in one summary push


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
                self._vapid = Vapid(load_or_create(self.aw.engine, self.aw.settings.data_dir), self.settings.subject)
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

    async def push(self, rows: list[Any], payload: bytes | list[bytes], urgency: str) -> list[dict[str, Any]]:
        """Push ``payload`` (or each of a list, in order) to ``rows`` and record the answers
        (removing the gone)."""
        if not rows:
            return []
        await asyncio.to_thread(lambda: self.vapid)  # the key is read (or made) off the loop
        results = await self.sender.send(rows, payload, urgency)
        answers = [(r["id"], r["status"], r["removed"]) for r in results]
        await asyncio.to_thread(store.record, self.aw.engine, answers)
        return results

    async def push_alerts(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The most severe :data:`MAX_ALERT_PUSHES` alerts one by one, the rest in one summary:
        a flood stays a few notifications per device, within the delivery's time limit."""
        rows = await asyncio.to_thread(self._readers_targets)
        ranked = sorted(alerts, key=message.severity, reverse=True)  # stable: oldest first within a severity
        payloads = [message.alert_payload(a) for a in ranked[:MAX_ALERT_PUSHES]]
        if len(ranked) > MAX_ALERT_PUSHES:
            payloads.append(message.summary_payload(ranked[MAX_ALERT_PUSHES:]))
        return await self.push(rows, payloads, "high")

    def _readers_targets(self) -> list[Any]:
        """Subscriptions of owners who may read alerts; a browser registered by several users
        (the same endpoint and keys) once."""
        rows = store.targets(self.aw.engine)
        allowed = {owner: may_read_alerts(self.aw, owner) for owner in {r.owner for r in rows}}
        chosen: list[Any] = []
        seen: set[tuple[str, str, str]] = set()
        for r in rows:
            same = (r.endpoint_hash, r.p256dh, r.auth)
            if allowed[r.owner] and same not in seen:
                seen.add(same)
                chosen.append(r)
        return chosen

    async def test(self, owner: str) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.targets, self.aw.engine, owner)
        return await self.push(rows, message.test_payload(), "normal")

    async def stop(self) -> None:
        sender = self.queue.sender
        if sender is not None and not sender.done():
            await asyncio.wait([sender], timeout=10)
