"""The approval gate of playbooks: a playbook (or one of its steps) saying ``requires_approval``
does not run when started (by hand or by its trigger); its run is stored ``awaiting_approval``
together with an approval request of kind ``playbook_run`` (one transaction), and waits.

- Approved (``POST /api/v1/approvals/{id}:approve``): the run starts, once, with the steps the
  playbook holds, which whoever saved it was checked for, as for any run. One transaction claims
  the request's due action and moves the run from ``awaiting_approval`` to ``running``: of the
  decider and a node recovering the action after a crash, one wins; a crash before it commits
  leaves both as they were, to be recovered. The steps run as a task of the server
  (:func:`agentwatch.soc.playbooks.background.carry`), the approval waiting for them at most
  ``playbooks.execute_wait_s``, as ``POST .../execute`` does: the request's ``outcome`` names the
  run and its ``run_status``, ``running`` while it goes on, then how it ended (the request then
  ``executed``, or ``failed`` when the run failed or a stop interrupted it). A run whose node
  died while it ran is ended ``interrupted`` by the sweep of another process
  (:mod:`agentwatch.soc.playbooks.liveness`), which ends the request ``failed`` in the same
  transaction (:func:`interrupted_in`) and audits it as the recovery.
- Rejected or expired: the run ends ``cancelled``; no step ran.
- A playbook changed, disabled or deleted since the request, or an alert deleted, is not run
  (the approver approved what the request showed): the request ends ``failed`` saying why.

A step's ``requires_approval`` holds the whole run, not only that step: no step runs before the
decision, so an alert is never left half handled while the request waits. Dry runs never wait.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

from agentwatch.detect import queries
from agentwatch.soc.approvals import decisions
from agentwatch.soc.approvals import store as approvals
from agentwatch.soc.approvals.kinds import register_gate
from agentwatch.soc.playbooks import background, store

KIND = "playbook_run"
RUNNING = store.RUNNING  # a released run's status in its request's outcome until it ends


class Held(Exception):
    """The approval request could not be stored: ``approvals.max_pending`` are waiting, or
    (``mine``) ``approvals.max_pending_per_requester`` of the person asking."""

    def __init__(self, mine: bool = False) -> None:
        super().__init__("requester" if mine else "all")
        self.mine = mine


def needed(playbook: dict[str, Any]) -> bool:
    return bool(playbook.get("requires_approval")) or any(s.get("requires_approval") for s in playbook["steps"])


def _why(playbook: dict[str, Any]) -> str:
    if playbook.get("requires_approval"):
        return f"playbook {playbook['name']!r} requires approval before every run"
    steps = [f"steps[{i}] ({s['action']})" for i, s in enumerate(playbook["steps"]) if s.get("requires_approval")]
    return f"playbook {playbook['name']!r} requires approval before its run: {', '.join(steps)}"


def _request_row(
    aw: Any, playbook: dict[str, Any], alert: dict[str, Any], run_id: str, trigger: str, started_by: str, person: str
) -> dict[str, Any]:
    gated = {
        "type": KIND,
        "playbook_id": playbook["id"],
        "playbook_name": playbook["name"],
        "playbook_updated_at": playbook["updated_at"],
        "alert_id": alert["id"],
        "run_id": run_id,
        "trigger": trigger,
        "steps": [{"action": s["action"], "name": s.get("name")} for s in playbook["steps"]],
    }
    title = str(alert.get("title") or "")
    return approvals.new_row(
        kind=KIND,
        subject=f"alert {alert['id']}: {title}"[:256] if title else f"alert {alert['id']}",
        reason=_why(playbook),
        action=f"run playbook {playbook['name']!r} on alert {alert['id']}"[:512],
        gated=gated,
        requested_by=started_by,
        requester=person,
        ttl_s=aw.settings.approvals.default_ttl_s,
    )


async def hold(
    aw: Any, playbook: dict[str, Any], alert: dict[str, Any], *, trigger: str, started_by: str, person: str
) -> dict[str, Any] | None:
    """Store the run as ``awaiting_approval`` with its approval request; the run, or None as
    :func:`runner.execute` answers it. Raises Held."""
    approval_id = str(uuid.uuid4())

    def with_request(conn: Any, run_id: str) -> None:  # in the run's own transaction
        row = _request_row(aw, playbook, alert, run_id, trigger, started_by, person)
        bounds = aw.settings.approvals
        approvals.add(conn, {**row, "id": approval_id}, bounds.max_pending, bounds.max_pending_per_requester)

    try:
        started = await asyncio.to_thread(
            store.start_run,
            aw.engine,
            playbook["id"],
            alert["id"],
            dry_run=False,
            trigger=trigger,
            started_by=started_by,
            held_by=approval_id,
            also=with_request,
        )
    except approvals.TooMany as exc:
        raise Held(exc.mine) from None
    if started is None:
        return None
    return await asyncio.to_thread(store.get_run, aw.engine, started[0])


def _alert(engine: Any, alert_id: str) -> dict[str, Any] | None:
    doc = queries.get_alert(engine, alert_id)
    return None if doc is None else {k: v for k, v in doc.items() if k not in ("events", "feedback")}


def _stale(playbook: dict[str, Any], gated: dict[str, Any]) -> bool:
    return playbook["updated_at"] != gated["playbook_updated_at"] or not playbook["enabled"]


def _problem(playbook: dict[str, Any] | None, alert: dict[str, Any] | None, gated: dict[str, Any]) -> str:
    """Why a held run is not started after all (the approver approved what the request showed)."""
    if playbook is None:
        return "playbook: deleted since the approval was asked for"
    if playbook["updated_at"] != gated["playbook_updated_at"]:
        return "playbook: changed since the approval was asked for; run it again to ask anew"
    if not playbook["enabled"]:
        return "playbook: disabled since the approval was asked for"
    return f"alert_id: the alert {gated['alert_id']} was deleted since the approval was asked for"


def _claim(engine: Any, request_id: str, run_id: str, start: bool) -> bool | None:
    """One transaction: take the request's due action and start (or cancel) its held run. None
    when another caller took it; else whether the run was still waiting. The request's outcome
    says the run is under way until it ends (:data:`RUNNING`)."""
    with engine.begin() as conn:
        if not approvals.claim(conn, request_id, {"run_id": run_id, "run_status": RUNNING} if start else None):
            return None
        return store.move_held(conn, run_id, start=start)


def interrupted_in(conn: Any, run: dict[str, Any]) -> bool:
    """In the transaction of the sweep that ends ``run`` ``interrupted`` (its node died while it
    ran): end the approval request that released it ``failed``, its outcome saying so; whether
    there was one to end (a run started by hand or by the trigger has none)."""
    if run["approval_id"] is None:
        return False
    outcome = {"run_id": run["id"], "run_status": run["status"], "error": run["reason"]}
    return approvals.finish_in(conn, run["approval_id"], False, outcome)


async def audit_interrupted(aw: Any, request_id: str) -> None:
    """Audit the request :func:`interrupted_in` ended (``approval.failed``, by the recovery)."""
    await decisions.audit_recorded(aw, request_id)


class PlaybookGate:
    """The :class:`agentwatch.soc.approvals.kinds.Gate` of ``playbook_run`` requests."""

    async def release(self, aw: Any, request: dict[str, Any]) -> tuple[bool, dict[str, Any]] | None:
        from agentwatch.soc.playbooks import runner  # runner imports this module

        gated = request["gated_action"]
        run_id = gated["run_id"]
        playbook = await asyncio.to_thread(store.get, aw.engine, gated["playbook_id"])
        alert = await asyncio.to_thread(_alert, aw.engine, gated["alert_id"])
        runnable = playbook is not None and alert is not None and not _stale(playbook, gated)
        moved = await asyncio.to_thread(_claim, aw.engine, request["id"], run_id, runnable)
        if moved is None:
            return None
        if not runnable or playbook is None or alert is None:
            return False, {"run_id": run_id, "error": _problem(playbook, alert, gated)}
        if not moved:
            return False, {"run_id": run_id, "error": "run: no longer awaiting approval (deleted or already started)"}
        run = await runner.run_started(aw, playbook, alert, run_id, dry_run=False, trigger=gated["trigger"])
        status = run["status"] if run is not None else "failed"
        if status == store.INTERRUPTED:  # swept while this node was stalled: the sweep ended the request
            return None
        return status != "failed", {"run_id": run_id, "run_status": status}

    async def carry(self, aw: Any, work: Coroutine[Any, Any, Any], request: dict[str, Any]) -> None:
        """As the other runs started by a request: a task of the server, waited for at most
        ``playbooks.execute_wait_s``."""
        await background.carry(aw, work, request["gated_action"]["run_id"])

    async def cancel(self, aw: Any, request: dict[str, Any]) -> None:
        await asyncio.to_thread(store.cancel_run, aw.engine, request["gated_action"]["run_id"])


def install() -> None:
    register_gate(KIND, PlaybookGate())
