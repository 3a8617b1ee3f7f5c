"""The hash-chained audit log.

Each row's ``hash`` is SHA-256 over the previous row's hash and the row's own fields, so
changing or deleting a row breaks the chain from that row on. Row numbers (``seq``) are
assigned by the writer, gap-free, under a lock on the single ``audit_head`` row, which also
names the newest row: deleting the newest rows (truncation) leaves the head pointing past
the end of the table. :func:`AuditLog.verify` walks the chain and names the first row that
is changed or missing.

Appends from the server go through :meth:`AuditLog.record`, which groups concurrent
entries into one transaction (group commit) and returns only once they are stored: an
audited request is never acknowledged before its audit row is durable. An ingest request's
row is instead stored in the transaction that stores its events (:class:`AuditTicket`):
one commit for both, and the row exists exactly when the events do.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update

from agentwatch.pipeline.gathering import let_arrive
from agentwatch.soc.auth_schema import audit_head, audit_log
from agentwatch.store.prepared import Prepared
from agentwatch.store.upsert import insert_ignore

log = structlog.get_logger("agentwatch.audit")

GENESIS = "0" * 64
HEAD_ID = 1
MAX_BATCH = 500
VERIFY_PAGE = 2000
FIELD_LIMITS = {"actor_kind": 16, "actor_id": 128, "actor_name": 320, "action": 128, "target": 512, "client": 64}
MAX_DETAILS_BYTES = 8192


@dataclass
class AuditTicket:
    """A request's audit row, which a route may commit together with its own writes.

    The audit middleware hands one to every audited request (``request.state.audit_ticket``).
    A route whose writes go through the pipeline passes it along; the pipeline then stores
    the row (built by ``entry`` for the status the route answers on success) in the same
    transaction as the events and sets ``stored_status``. The middleware, seeing the
    response carry that status, sends it at once instead of appending the row itself.
    """

    entry: Callable[[int], Awaitable[AuditEntry]]
    stored_status: int | None = None


class AuditError(RuntimeError):
    """The log cannot be appended to (its head row is gone: it was tampered with)."""


@dataclass
class AuditEntry:
    """What happened, who did it, to what, with which outcome. Never holds a secret."""

    action: str
    actor_kind: str = "anonymous"
    actor_id: str = "anonymous"
    actor_name: str = "anonymous"
    target: str = ""
    status: int | None = None
    client: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def fields(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "ts": self.ts,
            "actor_kind": self.actor_kind,
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "target": self.target,
            "status": self.status,
            "client": self.client,
        }
        for key, limit in FIELD_LIMITS.items():
            # NUL as U+FFFD, as PostgreSQL stores it (store.pg_text): the hash covers what is stored.
            row[key] = str(row[key] or "")[:limit].replace("\x00", "\ufffd")
        details = orjson.dumps(self.details, option=orjson.OPT_SORT_KEYS, default=str)
        if len(details) > MAX_DETAILS_BYTES:
            details = orjson.dumps({"truncated": True, "bytes": len(details)})
        row["details"] = details.decode()
        return row


def row_hash(row: dict[str, Any]) -> str:
    """The chain hash of a stored row: SHA-256 over its fields including ``prev_hash``."""
    material = orjson.dumps(
        [
            row["seq"],
            row["ts"],
            row["actor_kind"],
            row["actor_id"],
            row["actor_name"],
            row["action"],
            row["target"],
            row["status"],
            row["client"],
            row["details"],
            row["prev_hash"],
        ]
    )
    return hashlib.sha256(material).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int | None
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def row_view(row: Any) -> dict[str, Any]:
    """The API shape of one audit row."""
    m = row._mapping
    return {
        "seq": m["seq"],
        "ts": m["ts"],
        "actor": {"kind": m["actor_kind"], "id": m["actor_id"], "name": m["actor_name"]},
        "action": m["action"],
        "target": m["target"],
        "status": m["status"],
        "client": m["client"],
        "details": orjson.loads(m["details"]),
        "prev_hash": m["prev_hash"],
        "hash": m["hash"],
    }


# The append path runs once per batch of requests: compiled once, run on the driver's cursor.
_HEAD = audit_head.c.id == bindparam("head")
# Takes the head's lock and reads it in one statement (one round trip on PostgreSQL).
_LOCK_HEAD = Prepared(
    update(audit_head).where(_HEAD).values(updated_at=bindparam("now")).returning(audit_head.c.seq, audit_head.c.hash)
)
_INSERT = Prepared(
    audit_log.insert(),
    ["seq", "ts", "actor_kind", "actor_id", "actor_name", "action", "target", "status", "client", "details"]
    + ["prev_hash", "hash"],
)
_MOVE_HEAD = Prepared(update(audit_head).where(_HEAD).values(seq=bindparam("new_seq"), hash=bindparam("new_hash")))


class AuditLog:
    """Append, query and verify the audit chain on one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: list[tuple[AuditEntry, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.ensure_head()

    def ensure_head(self) -> None:
        """Create the head row of an empty log; a non-empty log without one stays broken."""
        with self.engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 0:
                insert_ignore(
                    conn, audit_head, [{"id": HEAD_ID, "seq": 0, "hash": GENESIS, "updated_at": time.time()}], ["id"]
                )

    # -- writing -------------------------------------------------------------------------------

    def append_many(self, entries: list[AuditEntry]) -> list[int]:
        """Store ``entries`` in one transaction, chained after the current head; returns their seqs."""
        if not entries:
            return []
        with self.engine.begin() as conn:
            return self.append_in(conn, entries)

    @staticmethod
    def append_in(conn: Connection, entries: list[AuditEntry]) -> list[int]:
        """Chain ``entries`` after the head inside the caller's transaction (committed with it)."""
        if not entries:
            return []
        # The UPDATE comes first: it takes the write lock (row lock on PostgreSQL, the
        # database write lock on SQLite) before the head is read, so concurrent writers,
        # in this process or another, serialize here.
        head = _LOCK_HEAD.rows(conn, head=HEAD_ID, now=time.time())
        if len(head) != 1:
            raise AuditError("audit log head row is missing; run `agentwatch audit verify`")
        ((head_seq, prev),) = head
        seq = int(head_seq)
        rows = []
        for entry in entries:
            seq += 1
            row = {"seq": seq, **entry.fields(), "prev_hash": prev}
            row["hash"] = prev = row_hash(row)
            rows.append(row)
        _INSERT.execute_many(conn, rows)
        _MOVE_HEAD.execute(conn, head=HEAD_ID, new_seq=seq, new_hash=prev)
        return [r["seq"] for r in rows]

    def append(self, entry: AuditEntry) -> int:
        return self.append_many([entry])[0]

    async def record(self, entry: AuditEntry) -> None:
        """Append from async code; concurrent callers share one transaction. Raises on failure."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((entry, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        await let_arrive(lambda: len(self._pending))
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await asyncio.to_thread(self.append_many, [e for e, _ in batch])
            except Exception as exc:
                log.error("audit.append_failed", error_type=type(exc).__name__, entries=len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    # -- reading -------------------------------------------------------------------------------

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; ``action`` ending in ``*`` matches a prefix; ``before_seq`` pages."""
        cond = []
        if actor:
            cond.append(or_(audit_log.c.actor_id == actor, audit_log.c.actor_name == actor))
        if action:
            if action.endswith("*"):
                prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                cond.append(audit_log.c.action.like(prefix + "%", escape="\\"))
            else:
                cond.append(audit_log.c.action == action)
        if since is not None:
            cond.append(audit_log.c.ts >= since)
        if until is not None:
            cond.append(audit_log.c.ts <= until)
        if before_seq is not None:
            cond.append(audit_log.c.seq < before_seq)
        stmt = select(audit_log).where(and_(True, *cond)).order_by(audit_log.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [row_view(r) for r in conn.execute(stmt)]

    def _rows(self) -> Iterator[Any]:
        last = 0
        while True:
            with self.engine.connect() as conn:
                page = conn.execute(
                    select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(VERIFY_PAGE)
                ).all()
            if not page:
                return
            yield from page
            last = page[-1].seq

    def verify(self) -> VerifyResult:
        """Walk the whole chain; the result names the first changed or missing row."""
        with self.engine.connect() as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == HEAD_ID)).first()
        head_seq = int(head.seq) if head is not None else None
        expected, prev, checked = 1, GENESIS, 0
        for r in self._rows():
            row = dict(r._mapping)
            if row["seq"] != expected:
                gap = f"{expected}" if row["seq"] == expected + 1 else f"{expected}-{row['seq'] - 1}"
                return VerifyResult(False, checked, head_seq, expected, f"row {gap} missing (deleted)")
            if row["prev_hash"] != prev:
                return VerifyResult(False, checked, head_seq, expected, f"row {expected}: prev_hash breaks the chain")
            if row_hash(row) != row["hash"]:
                return VerifyResult(False, checked, head_seq, expected, f"row {expected}: content changed")
            prev = row["hash"]
            expected += 1
            checked += 1
        last = expected - 1
        if head is None:
            if last == 0:
                return VerifyResult(True, 0, None)
            return VerifyResult(False, checked, None, last, "head row missing")
        if head_seq is not None and head_seq > last:
            gap = f"{last + 1}" if head_seq == last + 1 else f"{last + 1}-{head_seq}"
            return VerifyResult(False, checked, head_seq, last + 1, f"row {gap} missing (log truncated)")
        if head_seq is not None and head_seq < last:
            return VerifyResult(False, checked, head_seq, head_seq + 1, f"row {head_seq + 1}: not covered by the head")
        if head.hash != prev:
            return VerifyResult(False, checked, head_seq, last, "head hash does not match the newest row")
        return VerifyResult(True, checked, head_seq)
