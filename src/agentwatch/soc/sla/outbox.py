"""The outbox of the breach notices, kept on the breach rows themselves (revisions 0763, 0764).

A breach recorded while notices are on waits (``notify_state`` NULL). A pass of any node takes a
batch of the waiting ones whose ``notify_after`` has come (:func:`claim`): those that are not
to be sent are settled at once (``ended``: acknowledged, closed or deleted before its notice;
``simulated``: its alert is tagged so, a purple-team run; ``disabled``: its band was disabled
since), the others are claimed by one conditional update that counts the attempt, names the
pass (``notify_claim``) and moves ``notify_after`` to the claim's expiry. Another node's update
finds the condition false (PostgreSQL checks it again once the first one's row locks are
released; SQLite has one writer), so a breach is sent by one node at a time.

A notice has targets: each output of ``sla.notify_outputs`` (``output:<name>``) and the push to
whoever is on call (:data:`ONCALL`). The first claim fixes those it is meant for
(``notify_targets``: the claiming node's configured ones); ``notify_done`` lists those of them
that accepted it, so a retry goes only to the others (no duplicate for a receiver that already
has it). :func:`finish` records the outcome, only while the claim is still the pass's own (so
the targets done are written by the one pass that sent to them): ``sent`` once every target it
still waits for is done, or on failure another attempt after a backoff (1, 2, 4 ... minutes, at
most an hour), ``failed`` after :data:`MAX_ATTEMPTS`. A node that dies while sending leaves its
claim to expire after :data:`CLAIM_S`: the breach is then sent again to the targets not recorded
as done (delivery is at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, or_, select, update

from agentwatch.alerts.model import SIMULATED_TAG
from agentwatch.soc.sla import store
from agentwatch.soc.sla.schema import sla_events
from agentwatch.store.alerts_schema import alerts

BATCH = 100  # breaches claimed by one pass: one delivery per output
MAX_ATTEMPTS = 8
CLAIM_S = 300.0  # longer than a send may take (the watch stops waiting at SEND_S)
SEND_S = 120.0
BACKOFF_S = 60.0
MAX_BACKOFF_S = 3600.0
MAX_ERROR = 256
ONCALL = "oncall"  # the target key of the push to the member on call (an output's: "output:<name>")


def output_key(name: str) -> str:
    """The target key of the output ``name`` (apart from :data:`ONCALL`, whatever the name)."""
    return f"output:{name}"


@dataclass(frozen=True)
class Claimed:
    """A breach claimed for its notice, with its alert's title."""

    id: str
    alert_id: str
    kind: str
    band: str
    severity: int
    limit_minutes: int
    started_at: float
    due_at: float
    breached_at: float
    attempts: int
    alert_title: str
    targets: tuple[str, ...] = ()  # the target keys it is meant for (fixed at its first attempt)
    done: tuple[str, ...] = ()  # those of them that accepted it on an earlier attempt


@dataclass(frozen=True)
class Outcome:
    """What a pass did with a claimed breach: ``done``, every target done with it so far (this
    pass's included); ``error`` None when it waits for no target any more."""

    claimed: Claimed
    done: tuple[str, ...]
    error: str | None
    note: str | None


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    return min(MAX_BACKOFF_S, BACKOFF_S * 2 ** max(0, attempts - 1))


def _due(now: float) -> tuple[Any, ...]:
    e = sla_events.c
    return (e.notify_state.is_(None), or_(e.notify_after.is_(None), e.notify_after <= now))


def _is_simulated(tags: Any) -> bool:
    try:
        found = orjson.loads(tags or "[]")
    except orjson.JSONDecodeError:
        return False
    return isinstance(found, list) and SIMULATED_TAG in found


def _settled(row: Any, enabled: set[str]) -> str | None:
    """Why the breach of ``row`` is not to be sent, or None."""
    if row.notify_attempts >= MAX_ATTEMPTS:  # the last claim expired
        return "failed"
    if row.ended_at is not None or row.present is None:
        return "ended"
    if _is_simulated(row.tags):
        return "simulated"
    if row.band not in enabled:
        return "disabled"
    return None


def _dump(keys: Sequence[str]) -> str:
    return orjson.dumps(list(keys)).decode()


def claim(
    engine: Engine, now: float, token: str, limit: int = BATCH, targets: Sequence[str] | None = None
) -> list[Claimed]:
    """Claim at most ``limit`` due breaches for the pass ``token`` (oldest first), settling
    those not to be sent; the claimed ones. ``targets`` (the keys configured on this node) become
    the targets of those claimed for the first time."""
    e, a = sla_events.c, alerts.c
    # the alert of the breach's life: not an alert made again with the same id since
    mine = sla_events.outerjoin(alerts, and_(a.id == e.alert_id, a.created_at <= e.started_at))
    with engine.begin() as conn:
        # a read first: a pass with nothing to send takes no write lock
        rows = conn.execute(
            select(e.id, e.band, e.ended_at, e.notify_attempts, a.id.label("present"), a.tags)
            .select_from(mine)
            .where(*_due(now))
            .order_by(e.breached_at, e.id)
            .limit(limit)
        ).all()
        if not rows:
            return []
        enabled = {t.band for t, _who in store.targets_in(conn).values() if t.enabled}
        settle: dict[str, list[str]] = {}
        send: list[str] = []
        for r in rows:
            reason = _settled(r, enabled)
            if reason is None:
                send.append(r.id)
            else:
                settle.setdefault(reason, []).append(r.id)
        for reason, ids in settle.items():
            conn.execute(update(sla_events).where(e.id.in_(ids), *_due(now)).values(notify_state=reason))
        if not send:
            return []
        values: dict[str, Any] = {
            "notify_claim": token,
            "notify_after": now + CLAIM_S,
            "notify_attempts": e.notify_attempts + 1,
        }
        if targets is not None:  # in the same update: the first claim's node fixes them
            values["notify_targets"] = func.coalesce(e.notify_targets, _dump(targets))
        conn.execute(update(sla_events).where(e.id.in_(send), *_due(now)).values(values))
        got = conn.execute(
            select(sla_events, a.title)
            .select_from(mine)
            .where(e.id.in_(send), e.notify_claim == token)
            .order_by(e.breached_at, e.id)
        ).all()
    return [
        Claimed(
            r.id,
            r.alert_id,
            r.kind,
            r.band,
            r.severity,
            r.limit_minutes,
            r.started_at,
            r.due_at,
            r.breached_at,
            r.notify_attempts,
            r.title or "",
            store.target_keys(r.notify_targets),
            store.target_keys(r.notify_done),
        )
        for r in got
    ]


def finish(engine: Engine, now: float, token: str, outcomes: list[Outcome]) -> None:
    """Record the outcomes of the pass ``token``'s sends, each breach still claimed by it: the
    targets done with it, and sent (``note``: what could not be done without being a failure)
    or failed with ``error``. A breach claimed since by another pass (this one's claim expired)
    is left to that pass: its targets done here are then sent to again."""
    if not outcomes:
        return
    e = sla_events.c
    held = (e.notify_claim == token, e.notify_state.is_(None))
    groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
    for o in outcomes:  # one update per distinct outcome, not one per breach
        groups.setdefault(tuple(sorted(_recorded(o, now).items())), []).append(o.claimed.id)
    with engine.begin() as conn:
        for values, ids in groups.items():
            conn.execute(update(sla_events).where(e.id.in_(ids), *held).values(dict(values)))


def _recorded(o: Outcome, now: float) -> dict[str, Any]:
    """The columns of the outcome ``o`` at ``now``."""
    done = _dump(o.done)
    if o.error is None:
        return {
            "notify_state": "sent",
            "notified_at": now,
            "notify_after": None,
            "notify_error": _short(o.note),
            "notify_done": done,
        }
    last = o.claimed.attempts >= MAX_ATTEMPTS
    return {
        "notify_state": "failed" if last else None,
        "notify_after": None if last else now + backoff(o.claimed.attempts),
        "notify_error": _short(o.error),
        "notify_done": done,
    }


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
