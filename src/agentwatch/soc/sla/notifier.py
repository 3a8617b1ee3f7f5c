"""Breach notices to people, through what already reaches them: the alert outputs named by
``sla.notify_outputs`` (of ``detection.outputs``, built the same way, through the SSRF guard)
and a Web Push to whoever is on call in the rotation ``sla.notify_oncall``.

The member on call is matched to the user whose e-mail address it is (any case); that user's
subscriptions get the push, if push is on and the user may read alerts. Nobody on call, a
member who is no user, or a user with no subscription is not a failure (nothing to retry): it
is noted on the breach (``notify_error`` of a sent breach) and logged. A failed output, or a
push that reached none of the user's browsers, is a failure: the breach is sent again later to
every target (a target that got it may get it twice)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog

from agentwatch.notify import Notifier, build_output, deliver
from agentwatch.soc.oncall import store as oncall_store
from agentwatch.soc.oncall.schedule import on_call, to_us
from agentwatch.soc.oncall.spec import rotation
from agentwatch.soc.sla import notice, outbox
from agentwatch.soc.sla.settings import output_names, unknown_output

log = structlog.get_logger("agentwatch.sla")


def outputs_named(settings: Any) -> tuple[list[Notifier], list[str]]:
    """The outputs ``sla.notify_outputs`` names, and the problems of those that could not be
    built (reported, like detection's). Raises ValueError naming the setting for a name that
    is no output of ``detection.outputs``."""
    specs = list(settings.detection.outputs)
    why = unknown_output(specs, settings.sla.notify_outputs)
    if why is not None:
        raise ValueError(why)
    names = output_names(specs)
    chosen: list[Notifier] = []
    problems: list[str] = []
    for wanted in settings.sla.notify_outputs:
        i = names.index(wanted)
        try:
            chosen.append(build_output(dict(specs[i]), allow_private=settings.detection.outputs_allow_private))
        except ValueError as exc:
            problems.append(f"output {wanted}: not valid (detection.outputs[{i}].{exc})")
            log.error("sla.output_invalid", output=wanted, error=str(exc))
    return chosen, problems


class BreachNotifier:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.outputs, self.problems = outputs_named(aw.settings)
        self.oncall: str | None = aw.settings.sla.notify_oncall

    @property
    def active(self) -> bool:
        return self.aw.settings.sla.notifying

    async def run(self, now: float | None = None) -> int:
        """Claim a batch of due breaches, send them, record the outcome; how many were sent."""
        if not self.active:
            return 0
        at = time.time() if now is None else now
        token = str(uuid.uuid4())
        claimed = await asyncio.to_thread(outbox.claim, self.aw.engine, at, token)
        if not claimed:
            return 0
        try:
            errors, notes = await asyncio.wait_for(self._send(claimed, at), outbox.SEND_S)
        except TimeoutError:
            errors, notes = [f"not sent within {outbox.SEND_S:g} s"], []
        error = "; ".join(errors) or None
        await asyncio.to_thread(outbox.finish, self.aw.engine, at, token, claimed, error, "; ".join(notes) or None)
        if error is not None:
            log.warning("sla.notify_failed", breaches=len(claimed), error=error)
            return 0
        return len(claimed)

    async def _send(self, claimed: list[outbox.Claimed], now: float) -> tuple[list[str], list[str]]:
        errors = list(self.problems)
        notes: list[str] = []
        if self.outputs:
            notices = [notice.render(c, now) for c in claimed]
            results = await deliver(self.outputs, notices, timeout=outbox.SEND_S / 2)
            errors += [str(r["error"]) for r in results if not r["ok"]]
        if self.oncall is not None:
            error, note = await self._push(claimed, now)
            errors += [error] if error else []
            notes += [note] if note else []
        return errors, notes

    async def _push(self, claimed: list[outbox.Claimed], now: float) -> tuple[str | None, str | None]:
        """(a failure, a note) of the push to the member on call."""
        push = self.aw.components.get("push")
        if push is None or not self.aw.settings.push.enabled:
            return None, "oncall: push is off"
        owner, why = await asyncio.to_thread(self._on_call_owner, now)
        if owner is None:
            log.warning("sla.oncall_not_notified", rotation=self.oncall, reason=why)
            return None, f"oncall: {why}"
        rows = await asyncio.to_thread(_subscriptions, self.aw.engine, owner)
        if not rows:
            return None, "oncall: the member on call has no push subscription"
        results = await push.push(rows, notice.push_payloads(claimed), "high")
        if results and not any(r["ok"] for r in results):
            return f"oncall push: {len(results)} of {len(results)} pushes failed ({results[0]['error']})", None
        return None, None

    def _on_call_owner(self, now: float) -> tuple[str | None, str]:
        """The push owner (``user:<id>``) of the member on call at ``now``, or None and why."""
        from agentwatch.soc.push.service import may_read_alerts

        found = oncall_store.schedules(self.aw.engine, self.oncall)
        if not found:
            return None, f"no rotation {self.oncall!r}"
        _id, _name, spec = found[0]
        segment, _next = on_call(rotation(spec), to_us_at(now))
        if segment.member is None:
            return None, "nobody is on call"
        auth = getattr(self.aw, "auth", None)
        user = auth.users.by_email(segment.member) if auth is not None else None
        if user is None:
            return None, "the member on call is no user (matched by e-mail address)"
        owner = f"user:{user.id}"
        if not may_read_alerts(self.aw, owner):
            return None, "the member on call may not read alerts"
        return owner, ""


def to_us_at(now: float) -> int:
    """``now`` (seconds since the epoch) as the schedule's whole microseconds."""
    return to_us(datetime.fromtimestamp(now, UTC))


def _subscriptions(engine: Any, owner: str) -> list[Any]:
    from agentwatch.soc.push import store as push_store

    return push_store.targets(engine, owner)
