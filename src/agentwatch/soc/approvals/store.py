"""Stored approval requests: create, read, list, decide, expire, record the outcome, prune.

Every change of status is one conditional ``UPDATE`` (``WHERE status = 'pending' ...``) whose
row count says whether this caller made it: of two deciders, two nodes' expiry passes, or a
decider and an expiry pass, exactly one wins, on SQLite and PostgreSQL alike. A decision also
carries the four-eyes rule and the expiry in its condition, so neither can slip between a
read and the write.

Approving a request that holds an action also sets ``due_at`` in the same update: the action is
due. Whoever starts it first claims it (:func:`claim`, in the transaction that starts the
action), so it starts once, by the decider or, when the decider's node died before, by the
recovery of another node (:func:`due` lists those left).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, case, delete, func, or_, select, update

from agentwatch.events.model import iso
from agentwatch.soc.approvals.schema import approval_requests
from agentwatch.store.keyset import encode_cursor

T = approval_requests.c
PRINCIPAL_WIDTH = T.requested_by.type.length
STATUSES = ("pending", "approved", "rejected", "expired", "executed", "failed")
FINAL = ("rejected", "expired", "executed", "failed")


class TooMany(Exception):
    """``approvals.max_pending`` requests are waiting already, or (``mine``) the requester has
    ``approvals.max_pending_per_requester`` waiting."""

    def __init__(self, mine: bool = False) -> None:
        super().__init__("requester" if mine else "all")
        self.mine = mine


class Refused(Exception):
    """A decision that cannot be made; ``why`` is one of ``missing``, ``own``, ``expired``,
    ``decided``, and ``current`` the request as it is (None when missing)."""

    def __init__(self, why: str, current: dict[str, Any] | None) -> None:
        super().__init__(why)
        self.why = why
        self.current = current


def _doc(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def to_json(row: Any) -> dict[str, Any]:
    """The request as the API shows it."""
    return {
        "id": row.id,
        "kind": row.kind,
        "subject": row.subject,
        "reason": row.reason,
        "action": row.action,
        "gated_action": _doc(row.gated),
        "requested_by": row.requested_by,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "status": row.status,
        "decided_by": row.decided_by,
        "decided_at": iso(row.decided_at) if row.decided_at is not None else None,
        "comment": row.comment,
        "outcome": _doc(row.outcome),
        "updated_at": iso(row.updated_at),
    }


def new_row(
    *,
    kind: str,
    subject: str,
    reason: str,
    action: str,
    gated: dict[str, Any] | None,
    requested_by: str,
    requester: str,
    ttl_s: float,
    now: float | None = None,
) -> dict[str, Any]:
    """A pending request's row (not stored yet: :func:`add`)."""
    at = time.time() if now is None else now
    return {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "subject": subject,
        "reason": reason,
        "action": action,
        "gated": None if gated is None else orjson.dumps(gated).decode(),
        "requested_by": requested_by[:PRINCIPAL_WIDTH],
        "requester": requester[:PRINCIPAL_WIDTH],
        "status": "pending",
        "created_at": at,
        "expires_at": at + ttl_s,
        "updated_at": at,
    }


def add(conn: Connection, row: dict[str, Any], max_pending: int, max_per_requester: int) -> None:
    """Store ``row`` in ``conn``'s transaction (a capability holding an action stores its own
    record of it in the same one). Raises TooMany. The bounds are checked, not locked: requests
    made at the same instant may pass them by a few."""
    waiting = select(func.count()).select_from(approval_requests).where(T.status == "pending")
    if int(conn.execute(waiting).scalar_one()) >= max_pending:
        raise TooMany
    if int(conn.execute(waiting.where(T.requester == row["requester"])).scalar_one()) >= max_per_requester:
        raise TooMany(mine=True)
    conn.execute(approval_requests.insert().values(**row))


def create(engine: Engine, row: dict[str, Any], max_pending: int, max_per_requester: int) -> dict[str, Any]:
    with engine.begin() as conn:
        add(conn, row, max_pending, max_per_requester)
    return get(engine, row["id"]) or {}


def get(engine: Engine, request_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(approval_requests).where(T.id == request_id)).first()
    return None if row is None else to_json(row)


def page(
    engine: Engine,
    limit: int,
    cursor: tuple[float, str] | None,
    *,
    status: str | None = None,
    kind: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Requests, newest first, and the cursor of the next page."""
    stmt = select(approval_requests)
    if status is not None:
        stmt = stmt.where(T.status == status)
    if kind is not None:
        stmt = stmt.where(T.kind == kind)
    if cursor is not None:
        at, last = cursor
        stmt = stmt.where(or_(T.created_at < at, and_(T.created_at == at, T.id < last)))
    stmt = stmt.order_by(T.created_at.desc(), T.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [to_json(r) for r in rows], nxt


def decide(
    engine: Engine,
    request_id: str,
    *,
    approve: bool,
    who: str,
    person: str,
    comment: str | None,
    now: float,
    four_eyes: bool = True,
) -> dict[str, Any]:
    """Approve or reject a pending, unexpired request that ``person`` did not make (whoever made
    it when ``four_eyes`` is False: authentication is off); the request as decided. Raises
    Refused (an overdue request found here is marked expired first)."""
    values = {
        "status": "approved" if approve else "rejected",
        "decided_by": who[:PRINCIPAL_WIDTH],
        "decided_at": now,
        "comment": comment,
        "updated_at": now,
        # the held action is due from now on, until the transaction that starts it claims it
        "due_at": case((T.gated.is_not(None), now), else_=None) if approve else None,
    }
    with engine.begin() as conn:
        pending = [T.id == request_id, T.status == "pending", T.expires_at > now]
        if four_eyes:
            pending.append(T.requester != person)
        done = conn.execute(update(approval_requests).where(*pending).values(**values)).rowcount
    current = get(engine, request_id)
    if done == 1 and current is not None:
        return current
    if current is None:
        raise Refused("missing", None)
    if current["status"] != "pending":
        raise Refused("decided", current)
    with engine.connect() as conn:
        requester = conn.execute(select(T.requester).where(T.id == request_id)).scalar_one_or_none()
    if four_eyes and requester == person:
        raise Refused("own", current)
    expired = expire_one(engine, request_id, now)
    raise Refused("expired" if expired is not None else "decided", expired or get(engine, request_id))


def expire_one(engine: Engine, request_id: str, now: float) -> dict[str, Any] | None:
    """Mark the request expired if it is pending and overdue; the request when this call did it."""
    with engine.begin() as conn:
        done = conn.execute(
            update(approval_requests)
            .where(T.id == request_id, T.status == "pending", T.expires_at <= now)
            .values(status="expired", updated_at=now)
        ).rowcount
    return get(engine, request_id) if done == 1 else None


def expire_due(engine: Engine, now: float, limit: int = 500) -> list[dict[str, Any]]:
    """Mark up to ``limit`` overdue pending requests expired; those this call marked (another
    node's pass or a decision may take some first)."""
    with engine.connect() as conn:
        due = conn.execute(
            select(T.id).where(T.status == "pending", T.expires_at <= now).order_by(T.expires_at).limit(limit)
        ).all()
    out = []
    for (request_id,) in due:
        found = expire_one(engine, request_id, now)
        if found is not None:
            out.append(found)
    return out


def due(engine: Engine, before: float, limit: int = 100) -> list[dict[str, Any]]:
    """Approved requests whose held action became due before ``before`` and was never started,
    oldest first (a decider whose node died left them so)."""
    stmt = (
        select(approval_requests)
        .where(T.status == "approved", T.due_at.is_not(None), T.due_at < before)
        .order_by(T.due_at, T.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [to_json(r) for r in conn.execute(stmt).all()]


def claim(conn: Connection, request_id: str, outcome: dict[str, Any] | None = None) -> bool:
    """Take the due action of an approved request in ``conn``'s transaction, which starts the
    action too: True for the one caller that takes it, False for any other (or when it is not
    due). A crash before the commit leaves it due. ``outcome``: what was started, shown until
    :func:`finish` records how it ended."""
    values: dict[str, Any] = {"due_at": None, "updated_at": time.time()}
    if outcome is not None:
        values["outcome"] = orjson.dumps(outcome).decode()
    done = conn.execute(
        update(approval_requests)
        .where(T.id == request_id, T.status == "approved", T.due_at.is_not(None))
        .values(**values)
    ).rowcount
    return done == 1


def claim_alone(engine: Engine, request_id: str) -> bool:
    """:func:`claim` in a transaction of its own (an action that is not started after all)."""
    with engine.begin() as conn:
        return claim(conn, request_id)


def finish_in(conn: Connection, request_id: str, ok: bool, outcome: dict[str, Any]) -> bool:
    """Record what the released action did on an approved request (``executed`` or ``failed``)
    in ``conn``'s transaction (a capability ending its action there); whether this call did. A
    request whose action is still due (never claimed: nothing started), or whose outcome is
    recorded already, is left as it is."""
    done = conn.execute(
        update(approval_requests)
        .where(T.id == request_id, T.status == "approved", T.due_at.is_(None))
        .values(status="executed" if ok else "failed", outcome=orjson.dumps(outcome).decode(), updated_at=time.time())
    )
    return done.rowcount == 1


def finish(engine: Engine, request_id: str, ok: bool, outcome: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """:func:`finish_in` in a transaction of its own: (the request, whether this call recorded
    the outcome)."""
    with engine.begin() as conn:
        done = finish_in(conn, request_id, ok, outcome)
    return get(engine, request_id), done


def prune(engine: Engine, before: float) -> int:
    """Delete the requests in a final status (approved is final for a request holding no action)
    last changed before ``before``; how many."""
    final = or_(T.status.in_(FINAL), and_(T.status == "approved", T.gated.is_(None)))
    with engine.begin() as conn:
        return conn.execute(delete(approval_requests).where(final, T.updated_at < before)).rowcount
