"""What follows a decision or an expiry: the held action released or dropped, and the audit log.

Each decision and each expiry is one row of the hash-chained audit log of its own
(``approval.approve``, ``approval.reject``, ``approval.expire``), beside the request's own row,
and so is the outcome of a released action (``approval.executed``, ``approval.failed``). The
held action is released only by the caller whose conditional update approved the request,
so it runs once, whatever the number of deciders and nodes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from agentwatch.api.security import Principal
from agentwatch.soc.approvals import store
from agentwatch.soc.approvals.kinds import GATES
from agentwatch.soc.audit import AuditEntry
from agentwatch.soc.auth.service import actor_of

log = structlog.get_logger("agentwatch.approvals")
SYSTEM = {"actor_kind": "system", "actor_id": "approvals", "actor_name": "approval expiry"}
# with authentication off every caller is the one local operator (``local:local``): the rule
# "another person decides" cannot be met, so that operator decides, and the audit says so
NOT_ENFORCED = "not enforced: authentication is off, every caller is the one local operator"


def person_of(principal: Principal | None) -> str:
    """The person behind a credential, for the four-eyes rule: an API key counts as its owner."""
    if principal is None:
        return "anonymous:anonymous"
    if principal.kind == "api_key" and principal.extra.get("owner_id"):
        return f"user:{principal.extra['owner_id']}"
    return f"{principal.kind}:{principal.id}"


async def _audit(aw: Any, action: str, doc: dict[str, Any], actor: dict[str, str], client: str, **details: Any) -> None:
    audit = getattr(aw, "audit", None)
    if audit is None:
        return
    entry = AuditEntry(
        action,
        **actor,
        target=f"approval:{doc['id']}",
        status=200,
        client=client,
        details={"kind": doc["kind"], "status": doc["status"], **details},
    )
    await audit.record(entry)


async def decide(
    aw: Any, request_id: str, *, approve: bool, principal: Principal | None, client: str, comment: str | None
) -> dict[str, Any]:
    """Approve or reject; the request as it ends (after the held action ran, when approved).
    Raises :class:`store.Refused`."""
    who = f"{principal.kind}:{principal.id}" if principal is not None else "anonymous"
    four_eyes = bool(aw.settings.auth.enabled)
    try:
        doc = await asyncio.to_thread(
            store.decide,
            aw.engine,
            request_id,
            approve=approve,
            who=who,
            person=person_of(principal),
            comment=comment,
            now=time.time(),
            four_eyes=four_eyes,
        )
    except store.Refused as exc:
        if exc.why == "expired" and exc.current is not None:
            await expired(aw, exc.current)
        raise
    actor = actor_of(principal)
    rule = {} if four_eyes else {"four_eyes": NOT_ENFORCED}
    await _audit(aw, "approval.approve" if approve else "approval.reject", doc, actor, client, **rule)
    gate = GATES.get(doc["kind"])
    if doc["gated_action"] is None:
        return doc
    if not approve:
        if gate is not None:
            await gate.cancel(aw, doc)
        return doc
    if gate is None:
        ok, outcome = False, {"error": f"kind {doc['kind']!r}: its capability is not running"}
    else:
        try:
            ok, outcome = await gate.release(aw, doc)
        except Exception as exc:  # the decision stands; the action's failure is its outcome
            log.exception("approvals.release_failed", request=doc["id"], kind=doc["kind"])
            ok, outcome = False, {"error": f"{type(exc).__name__}: the held action failed unexpectedly"}
    final = await asyncio.to_thread(store.finish, aw.engine, doc["id"], ok, outcome) or doc
    await _audit(aw, f"approval.{final['status']}", final, actor, client)
    return final


async def expired(aw: Any, doc: dict[str, Any]) -> None:
    """After this node marked ``doc`` expired: drop its held action, audit the expiry."""
    gate = GATES.get(doc["kind"])
    if doc["gated_action"] is not None and gate is not None:
        try:
            await gate.cancel(aw, doc)
        except Exception:
            log.exception("approvals.cancel_failed", request=doc["id"], kind=doc["kind"])
    await _audit(aw, "approval.expire", doc, SYSTEM, "")


async def expiry_pass(aw: Any, now: float | None = None) -> int:
    """Mark the overdue pending requests expired (and handle each), prune the old final ones;
    how many this pass expired."""
    at = time.time() if now is None else now
    settings = aw.settings.approvals
    done = await asyncio.to_thread(store.expire_due, aw.engine, at)
    for doc in done:
        await expired(aw, doc)
    await asyncio.to_thread(store.prune, aw.engine, at - settings.keep_days * 86_400.0)
    return len(done)
