"""The kinds of approval request, and the gates that act on a decision.

A kind in :data:`KINDS` is asked for through ``POST /api/v1/approvals``: the request records
the question and its answer, and what is approved is then done by people (a containment step,
a grant of access, a change of configuration, an accepted risk). A kind with a :class:`Gate`
is created by another capability when something it was about to do needs approval (the
playbooks capability: ``playbook_run``); the gate does the held action when the request is
approved, and drops it when the request is rejected or expires. Those kinds are never
created through the API: the action they hold is exactly what their capability stored.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

KINDS: dict[str, str] = {
    "response_action": "a containment or response step done by hand (isolate a host, revoke a token, block a model)",
    "access_grant": "access to data, a system or a privileged role",
    "config_change": "a change to detection, outputs or other configuration",
    "risk_acceptance": "an accepted risk or an exception to a rule",
}


class Gate(Protocol):
    """What a capability holding an action behind a request provides for its kind."""

    async def release(self, aw: Any, request: dict[str, Any]) -> tuple[bool, dict[str, Any]] | None:
        """Do the held action of an approved ``request``; (whether it succeeded, what it did).

        The transaction that starts the action (or drops it, when it can no longer run) must
        take it with :func:`agentwatch.soc.approvals.store.claim`; when that claim fails another
        caller has started it (a recovery on another node, or the decider): answer None and do
        nothing. Thus the action starts once, and a crash before that commit leaves it due."""
        ...

    async def carry(self, aw: Any, work: Coroutine[Any, Any, Any], request: dict[str, Any]) -> None:
        """Run ``work`` (the release of ``request``: :meth:`release`, then the record of its
        outcome) as a task of the server that outlasts the caller, and wait for it as long as
        the capability answers a run it starts (its own bound); return then, ended or not."""
        ...

    async def cancel(self, aw: Any, request: dict[str, Any]) -> None:
        """Drop the held action of a rejected or expired ``request``."""
        ...


GATES: dict[str, Gate] = {}


def register_gate(kind: str, gate: Gate) -> None:
    """Make ``kind`` a gated kind (a capability's plugin calls this once)."""
    if kind in KINDS:
        raise ValueError(f"kind {kind!r} is an API kind")
    GATES[kind] = gate


def known(kind: str) -> bool:
    return kind in KINDS or kind in GATES
