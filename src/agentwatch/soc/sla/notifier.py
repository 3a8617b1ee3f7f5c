"""Breach notices to people, through what already reaches them: the alert outputs named by
``sla.notify_outputs`` (of ``detection.outputs``, built the same way, through the SSRF guard)
and a Web Push to whoever is on call in the rotation ``sla.notify_oncall``.

The member on call is matched to the user whose e-mail address it is (any case); that user's
subscriptions get the push, if push is on and the user may read alerts. Nobody on call, a
member who is no user, or a user with no subscription is not a failure (nothing to retry): it
is noted on the breach (``notify_error`` of a sent breach) and logged. A failed output, or a
push that reached none of the user's browsers, is a failure of that target only: the outbox
remembers the targets that accepted the notice, and the retry goes to the others alone.

Each notice goes to the targets its first attempt fixed (:mod:`outbox`), of those configured
on the node now: one no longer configured is not waited for (noted on the sent breach), one
configured since the first attempt does not get it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
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


def outputs_named(settings: Any) -> tuple[dict[str, Notifier], dict[str, str]]:
    """The outputs ``sla.notify_outputs`` names, by name, and the problems of those that could
    not be built (reported, like detection's), by name. Raises ValueError naming the setting for
    a name that is no output of ``detection.outputs``."""
    specs = list(settings.detection.outputs)
    why = unknown_output(specs, settings.sla.notify_outputs)
    if why is not None:
        raise ValueError(why)
    names = output_names(specs)
    chosen: dict[str, Notifier] = {}
    problems: dict[str, str] = {}
    for wanted in settings.sla.notify_outputs:
        i = names.index(wanted)
        try:
            chosen[wanted] = build_output(dict(specs[i]), allow_private=settings.detection.outputs_allow_private)
        except ValueError as exc:
            problems[wanted] = f"output {wanted}: not valid (detection.outputs[{i}].{exc})"
            log.error("sla.output_invalid", output=wanted, error=str(exc))
    return chosen, problems


@dataclass
class Delivery:
    """What one pass owes each claimed breach (``todo``: its targets configured here and not
    done yet) and what it got: the targets that accepted it, the failures and notes."""

    claimed: list[outbox.Claimed]
    configured: list[str]
    todo: dict[str, list[str]] = field(default_factory=dict)
    accepted: dict[str, set[str]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.claimed:
            # targets not fixed yet (a claim that gave none): those configured here
            meant = set(c.targets or self.configured)
            self.todo[c.id] = [k for k in self.configured if k in meant and k not in c.done]
            self.accepted[c.id] = set()
            self.errors[c.id] = {}
            self.notes[c.id] = [f"{k}: no longer configured, not sent" for k in _dropped(c, self.configured)]

    def wanting(self, key: str) -> list[outbox.Claimed]:
        """The claimed breaches still to be sent to the target ``key``."""
        return [c for c in self.claimed if key in self.todo[c.id]]

    def accept(self, batch: list[outbox.Claimed], key: str, note: str | None = None) -> None:
        for c in batch:
            self.accepted[c.id].add(key)
            if note:
                self.notes[c.id].append(note)

    def fail(self, batch: list[outbox.Claimed], key: str, error: str) -> None:
        for c in batch:
            self.errors[c.id][key] = error

    def outcome(self, c: outbox.Claimed) -> outbox.Outcome:
        """The outcome of ``c``: a target that neither accepted nor failed was cut short."""
        got = self.accepted[c.id]
        missing = [k for k in self.todo[c.id] if k not in got]
        cut = f"not sent within {outbox.SEND_S:g} s"
        error = "; ".join(self.errors[c.id].get(k, cut) for k in missing) or None
        done = tuple(k for k in (c.targets or self.configured) if k in got or k in c.done)
        return outbox.Outcome(c, done, error, "; ".join(self.notes[c.id]) or None)


def _dropped(c: outbox.Claimed, configured: list[str]) -> list[str]:
    """The targets ``c`` is meant for, not done and no longer configured: not waited for."""
    return [k for k in c.targets if k not in c.done and k not in configured]


class BreachNotifier:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.outputs, self.problems = outputs_named(aw.settings)
        self.oncall: str | None = aw.settings.sla.notify_oncall
        # the target keys configured here, in the order of the settings
        self.targets = [outbox.output_key(n) for n in aw.settings.sla.notify_outputs]
        self.targets += [outbox.ONCALL] if self.oncall is not None else []

    @property
    def active(self) -> bool:
        return self.aw.settings.sla.notifying

    async def run(self, now: float | None = None) -> int:
        """Claim a batch of due breaches, send each to its targets not done yet, record the
        outcome; how many were sent (to all their targets)."""
        if not self.active:
            return 0
        at = time.time() if now is None else now
        token = str(uuid.uuid4())
        claimed = await asyncio.to_thread(outbox.claim, self.aw.engine, at, token, outbox.BATCH, tuple(self.targets))
        if not claimed:
            return 0
        delivery = Delivery(claimed, self.targets)
        # the targets that have not answered by then count as failed (Delivery.outcome)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._send(delivery, at), outbox.SEND_S)
        outcomes = [delivery.outcome(c) for c in claimed]
        await asyncio.to_thread(outbox.finish, self.aw.engine, at, token, outcomes)
        failed = [o for o in outcomes if o.error is not None]
        if failed:
            log.warning("sla.notify_failed", breaches=len(failed), error=failed[0].error)
        return len(outcomes) - len(failed)

    async def _send(self, delivery: Delivery, now: float) -> None:
        """Send each target the notices it still owes, all targets at once."""
        sends = []
        for name, output in self.outputs.items():
            batch = delivery.wanting(outbox.output_key(name))
            if batch:
                sends.append(self._to_output(delivery, name, output, batch, now))
        for name, problem in self.problems.items():
            key = outbox.output_key(name)
            delivery.fail(delivery.wanting(key), key, problem)
        batch = delivery.wanting(outbox.ONCALL)
        if batch:
            sends.append(self._to_oncall(delivery, batch, now))
        await asyncio.gather(*sends)

    async def _to_output(
        self, delivery: Delivery, name: str, output: Notifier, batch: list[outbox.Claimed], now: float
    ) -> None:
        key = outbox.output_key(name)
        notices = [notice.render(c, now) for c in batch]
        (result,) = await deliver([output], notices, timeout=outbox.SEND_S / 2)
        if result["ok"]:  # also when the output's min_severity skipped them: nothing owed
            delivery.accept(batch, key)
        else:
            delivery.fail(batch, key, str(result["error"]))

    async def _to_oncall(self, delivery: Delivery, batch: list[outbox.Claimed], now: float) -> None:
        error, note = await self._push(batch, now)
        if error is None:  # nobody to push (a note) is done too: nothing to retry
            delivery.accept(batch, outbox.ONCALL, note)
        else:
            delivery.fail(batch, outbox.ONCALL, error)

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
