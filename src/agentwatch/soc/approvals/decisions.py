"""What follows a decision or an expiry: the held action released or dropped, and the audit log.

Each decision and each expiry is one row of the hash-chained audit log of its own
(``approval.approve``, ``approval.reject``, ``approval.expire``), beside the request's own row,
and so is the outcome of a released action (``approval.executed``, ``approval.failed``). The
held action is started once, whatever the number of deciders and nodes: the decision that
approves the request marks the action due (in its own conditional update), and whoever starts it
claims it in the transaction that starts it (:func:`store.claim`). That is the decider, at once;
when the decider's node died between its decision and that start, the recovery of a node
(:func:`release_pass`: at its start and in its approvals watch) starts it, once the decision is
:data:`RELEASE_GRACE_S` old, so as not to race a decider still at work.

The released action runs as a task of the server that its capability carries (the playbooks:
``playbooks.execute_wait_s`` of waiting, see :mod:`agentwatch.soc.playbooks.background`), not
inside the decider's request: the decider going away does not stop it, and the outcome and its
audit row are recorded when it ends. A stop that cuts it off ends the request ``failed``
(:data:`INTERRUPTED`), audited as any failure; it is never started again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from agentwatch.api.security import Principal
from agentwatch.soc.approvals import store
from agentwatch.soc.approvals.kinds import GATES, Gate
from agentwatch.soc.audit import AuditEntry
from agentwatch.soc.auth.service import actor_of

log = structlog.get_logger("agentwatch.approvals")
SYSTEM = {"actor_kind": "system", "actor_id": "approvals", "actor_name": "approval expiry"}
RECOVERY = {"actor_kind": "system", "actor_id": "approvals", "actor_name": "approval recovery"}
# how old a decision is before another caller than its decider starts its due action: the
# decider starts it within moments of its decision, unless its node died
RELEASE_GRACE_S = 10.0
INTERRUPTED = "interrupted: the server stopped while the held action ran"
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
    """Approve or reject; the request as it ends, or, when approving starts a held action that
    outlasts its capability's wait, as it stands (:func:`release`). Raises :class:`store.Refused`."""
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
    return await release(aw, doc, actor, client, or_fail=True)


async def release(
    aw: Any, doc: dict[str, Any], actor: dict[str, str], client: str, *, or_fail: bool = False
) -> dict[str, Any]:
    """Start the due held action of the approved request ``doc`` unless another caller has, and
    record its outcome. The action runs as its capability carries it (:meth:`Gate.carry`: a task
    of the server, so the caller going away does not stop it, waited for a bounded time), which
    records the outcome when the action ends. The request as it stands then: ``executed`` or
    ``failed`` once the action ended, else ``approved`` with the outcome so far. A kind whose
    capability is not running here is failed when ``or_fail`` (the decider), else left due for a
    node that runs it."""
    gate = GATES.get(doc["kind"])
    if gate is None:
        if not or_fail or not await asyncio.to_thread(store.claim_alone, aw.engine, doc["id"]):
            return doc
        return await _settle(
            aw, doc, actor, client, False, {"error": f"kind {doc['kind']!r}: its capability is not running"}
        )
    await gate.carry(aw, _released(aw, gate, doc, actor, client), doc)
    return await asyncio.to_thread(store.get, aw.engine, doc["id"]) or doc


async def _released(aw: Any, gate: Gate, doc: dict[str, Any], actor: dict[str, str], client: str) -> dict[str, Any]:
    """The held action of ``doc`` through its gate, then the record of how it ended."""
    try:
        done = await gate.release(aw, doc)
    except asyncio.CancelledError:  # a stop cut the action off: once started, never again
        await asyncio.shield(_settle(aw, doc, actor, client, False, {"error": INTERRUPTED}))
        raise
    except Exception as exc:  # the decision stands; the action's failure is its outcome
        log.exception("approvals.release_failed", request=doc["id"], kind=doc["kind"])
        done = False, {"error": f"{type(exc).__name__}: the held action failed unexpectedly"}
    if done is None:  # another caller started it, and records its outcome
        return await asyncio.to_thread(store.get, aw.engine, doc["id"]) or doc
    return await _settle(aw, doc, actor, client, *done)


async def _settle(
    aw: Any, doc: dict[str, Any], actor: dict[str, str], client: str, ok: bool, outcome: dict[str, Any]
) -> dict[str, Any]:
    """Record the outcome of the started action of ``doc`` and audit it; the request. An outcome
    recorded first by another (the playbooks' sweep of a run whose node stopped beating) stands,
    audited once, by whoever recorded it."""
    final, recorded = await asyncio.to_thread(store.finish, aw.engine, doc["id"], ok, outcome)
    if recorded and final is not None:  # else nothing was started (it stays due), or it ended already
        await _audit(aw, f"approval.{final['status']}", final, actor, client)
    return final or doc


async def audit_recorded(aw: Any, request_id: str) -> None:
    """Audit the outcome of a released action that its capability recorded itself, its carrier
    being gone (the playbooks' sweep ends a run whose node died and the request in one
    transaction: :func:`store.finish_in`), as the recovery's."""
    doc = await asyncio.to_thread(store.get, aw.engine, request_id)
    if doc is not None and doc["status"] in ("executed", "failed"):
        await _audit(aw, f"approval.{doc['status']}", doc, RECOVERY, "")


async def release_pass(aw: Any, now: float | None = None) -> int:
    """Start the held actions approved at least :data:`RELEASE_GRACE_S` ago and never started
    (their decider's node died first), one after another (each waited for as :func:`release`
    does); how many this pass started."""
    at = time.time() if now is None else now
    started = 0
    for doc in await asyncio.to_thread(store.due, aw.engine, at - RELEASE_GRACE_S):
        final = await release(aw, doc, RECOVERY, "")
        if final["status"] != "approved" or final["outcome"] is not None:  # ended, or under way
            started += 1
            log.warning("approvals.due_action_recovered", request=doc["id"], kind=doc["kind"], status=final["status"])
    return started


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
