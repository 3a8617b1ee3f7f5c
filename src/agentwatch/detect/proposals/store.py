"""Stored proposals, their comments, evals and baselines; every status change is one conditional
UPDATE (on the status and the logic version read), so two requests racing cannot both win.

Status machine::

    open --eval--> evaluated --decide--> approved --promote--> promoted
      ^               |          \\--> rejected
      +--- change ----+          (decide also from open)

A change of logic or test cases (only while open or evaluated) makes a new logic version and
puts the proposal back to open: evals of earlier versions stay in the history but no longer
count for promotion.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, update

from agentwatch.detect.proposals.schema import (
    detection_proposal_comments,
    detection_proposal_evals,
    detection_proposals,
)
from agentwatch.events.model import iso
from agentwatch.store.keyset import encode_cursor

STATUSES = ("open", "evaluated", "approved", "rejected", "promoted")
CHANGEABLE = ("open", "evaluated")
DECIDABLE = ("open", "evaluated")
EVALUABLE = ("open", "evaluated", "approved")
MAX_COMMENTS = 1_000
SHOWN_COMMENTS = 200
SHOWN_EVALS = 20

P = detection_proposals
C = detection_proposal_comments
E = detection_proposal_evals


class WrongStatus(Exception):
    """The proposal is not in a status the action takes; names the current one."""

    def __init__(self, action: str, current: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"status: a proposal that is {current!r} cannot be {action} (only {' or '.join(allowed)} ones can)"
        )
        self.current = current


class Changed(Exception):
    """The proposal changed between reading and writing (another request got there first)."""


class Full(Exception):
    pass


@dataclass
class Proposal:
    row: Any

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def status(self) -> str:
        return self.row.status

    @property
    def version(self) -> int:
        return int(self.row.logic_version)

    def summary(self) -> dict[str, Any]:
        r = self.row
        decision = None
        if r.decided_at is not None:
            verdict = "approved" if r.approved_logic_version is not None else "rejected"
            decision = {"decision": verdict, "by": r.decided_by, "at": iso(r.decided_at), "reason": r.decision_reason}
        return {
            "id": r.id,
            "title": r.title,
            "description": r.description,
            "status": r.status,
            "rule_id": r.rule_id,
            "logic_version": r.logic_version,
            "mitre_tags": orjson.loads(r.mitre_tags),
            "author": r.author,
            "created_at": iso(r.created_at),
            "updated_at": iso(r.updated_at),
            "decision": decision,
            "promoted_rule_id": r.promoted_rule_id,
            "promoted_by": r.promoted_by,
            "promoted_at": iso(r.promoted_at) if r.promoted_at is not None else None,
        }

    def full(self) -> dict[str, Any]:
        return {**self.summary(), "logic": self.row.logic, "test_cases": orjson.loads(self.row.test_cases)}


def create(engine: Engine, doc: dict[str, Any], author: str, person: str, max_proposals: int) -> str | None:
    """Store a new open proposal; its id, or None when ``max_proposals`` are kept already."""
    now = time.time()
    pid = str(uuid.uuid4())
    with engine.begin() as conn:
        if conn.execute(select(func.count()).select_from(P)).scalar_one() >= max_proposals:
            return None
        conn.execute(
            P.insert().values(
                id=pid,
                title=doc["title"],
                description=doc["description"],
                logic=doc["logic"],
                logic_version=1,
                rule_id=doc["rule_id"],
                mitre_tags=orjson.dumps(doc["mitre_tags"]).decode(),
                test_cases=orjson.dumps(doc["test_cases"]).decode(),
                status="open",
                author=author,
                author_person=person,
                created_at=now,
                updated_at=now,
            )
        )
    return pid


def get(engine: Engine, pid: str) -> Proposal | None:
    with engine.connect() as conn:
        row = conn.execute(select(P).where(P.c.id == pid)).first()
    return Proposal(row) if row is not None else None


def search(
    engine: Engine, status: str | None, limit: int, cursor: tuple[float, str] | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """Newest first; (page, total matching, next cursor)."""
    where = [P.c.status == status] if status else []
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(P).where(*where)).scalar_one()
        stmt = select(P).where(*where)
        if cursor is not None:
            at, last = cursor
            stmt = stmt.where((P.c.created_at < at) | ((P.c.created_at == at) & (P.c.id < last)))
        rows = conn.execute(stmt.order_by(P.c.created_at.desc(), P.c.id.desc()).limit(limit + 1)).all()
    nxt = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return [Proposal(r).summary() for r in rows[:limit]], total, nxt


def change(engine: Engine, p: Proposal, values: dict[str, Any], new_version: bool) -> None:
    """Apply ``values`` to ``p`` as read; raises WrongStatus or Changed."""
    if p.status not in CHANGEABLE:
        raise WrongStatus("changed", p.status, CHANGEABLE)
    values = {**values, "updated_at": time.time()}
    if new_version:
        values.update(logic_version=p.version + 1, status="open")
    _conditional(engine, p, values, CHANGEABLE)


def _conditional(engine: Engine, p: Proposal, values: dict[str, Any], statuses: tuple[str, ...]) -> None:
    stmt = update(P).where(P.c.id == p.id, P.c.logic_version == p.version, P.c.status.in_(statuses))
    with engine.begin() as conn:
        if conn.execute(stmt.values(**values)).rowcount != 1:
            raise Changed()


def add_comment(engine: Engine, pid: str, author: str, body: str) -> dict[str, Any]:
    now = time.time()
    cid = str(uuid.uuid4())
    with engine.begin() as conn:
        n = conn.execute(select(func.count()).select_from(C).where(C.c.proposal_id == pid)).scalar_one()
        if n >= MAX_COMMENTS:
            raise Full(f"comments: a proposal holds at most {MAX_COMMENTS} comments")
        conn.execute(C.insert().values(id=cid, proposal_id=pid, author=author, body=body, created_at=now))
        conn.execute(update(P).where(P.c.id == pid).values(updated_at=now))
    return {"id": cid, "author": author, "body": body, "created_at": iso(now)}


def comments(engine: Engine, pid: str) -> list[dict[str, Any]]:
    """The newest :data:`SHOWN_COMMENTS`, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(C).where(C.c.proposal_id == pid).order_by(C.c.created_at.desc(), C.c.id.desc()).limit(SHOWN_COMMENTS)
        ).all()
    return [{"id": r.id, "author": r.author, "body": r.body, "created_at": iso(r.created_at)} for r in reversed(rows)]


def eval_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "logic_version": row.logic_version,
        "passed": row.passed,
        "result": orjson.loads(row.result),
        "external": orjson.loads(row.external) or None,
        "by": row.principal,
        "created_at": iso(row.created_at),
    }


def add_eval(
    engine: Engine, p: Proposal, passed: bool, result: dict[str, Any], external: dict[str, Any] | None, who: str
) -> dict[str, Any]:
    """Store an eval of ``p``'s logic version as read; an open proposal becomes evaluated (unless
    its logic changed meanwhile, when the eval is kept for a version that no longer counts)."""
    now = time.time()
    row = {
        "id": str(uuid.uuid4()),
        "proposal_id": p.id,
        "logic_version": p.version,
        "logic_sha256": result["logic_sha256"],
        "passed": passed,
        "result": orjson.dumps(result).decode(),
        "external": orjson.dumps(external or {}).decode(),
        "principal": who,
        "created_at": now,
    }
    with engine.begin() as conn:
        conn.execute(E.insert().values(**row))
        conn.execute(
            update(P)
            .where(P.c.id == p.id, P.c.logic_version == p.version, P.c.status.in_(("open", "evaluated")))
            .values(status="evaluated", updated_at=now)
        )
    return eval_json(SimpleNamespace(**row))


def latest_eval(engine: Engine, pid: str, version: int) -> Any | None:
    with engine.connect() as conn:
        return conn.execute(
            select(E)
            .where(E.c.proposal_id == pid, E.c.logic_version == version)
            .order_by(E.c.created_at.desc(), E.c.id.desc())
            .limit(1)
        ).first()


def evals(engine: Engine, pid: str) -> list[dict[str, Any]]:
    """The newest :data:`SHOWN_EVALS` evals, newest first, without their full results."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(E.c.id, E.c.logic_version, E.c.passed, E.c.principal, E.c.created_at)
            .where(E.c.proposal_id == pid)
            .order_by(E.c.created_at.desc(), E.c.id.desc())
            .limit(SHOWN_EVALS)
        ).all()
    return [
        {
            "id": r.id,
            "logic_version": r.logic_version,
            "passed": r.passed,
            "by": r.principal,
            "created_at": iso(r.created_at),
        }
        for r in rows
    ]


def decide(engine: Engine, p: Proposal, approve: bool, reason: str, who: str) -> None:
    if p.status not in DECIDABLE:
        raise WrongStatus("decided", p.status, DECIDABLE)
    now = time.time()
    values = {
        "status": "approved" if approve else "rejected",
        "decided_by": who,
        "decided_at": now,
        "decision_reason": reason,
        "approved_logic_version": p.version if approve else None,
        "updated_at": now,
    }
    _conditional(engine, p, values, DECIDABLE)


def mark_promoted(engine: Engine, p: Proposal, rule_id: str, who: str) -> None:
    now = time.time()
    values = {
        "status": "promoted",
        "promoted_rule_id": rule_id,
        "promoted_by": who,
        "promoted_at": now,
        "updated_at": now,
    }
    _conditional(engine, p, values, ("approved",))


def promoted(engine: Engine, rule_id: str) -> bool:
    """Whether ``rule_id`` went live through a detection proposal (its four-eyes decision)."""
    with engine.connect() as conn:
        found = conn.execute(
            select(detection_proposals.c.id).where(detection_proposals.c.promoted_rule_id == rule_id).limit(1)
        ).first()
    return found is not None
