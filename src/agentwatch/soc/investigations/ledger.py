"""The Investigation Ledger: entries appended in order, hash-chained per investigation.

An entry is the canonical JSON (sorted keys, orjson) of ``{investigation_id, seq, kind, ts,
payload}``, stored as that exact text. Its hash is ``sha256(prev_hash + body)`` with
``prev_hash`` the hash of the entry before it (:data:`GENESIS` for the first), and the
investigation's row keeps the head (the last hash and the count): a changed body, a changed
order, a removed entry or a ledger cut short no longer verifies. The head is sealed
(:mod:`.seal`: an HMAC under a key the database does not hold, moved with the head in the same
update), so a ledger rewritten whole, its chain recomputed, does not verify either. A head
without a seal fails too (``mac: "unkeyed"``); the heads written before heads were sealed are
sealed by an operator's command, each whose chain verifies (:func:`seal_unsealed`).

Writes are not best-effort: :meth:`Ledger.append` moves the head and inserts the entry in one
transaction, only from the head it knows (a compare-and-set) and only while the investigation is
running (not once another node marked it abandoned), and raises
:class:`LedgerWriteFailed` when either fails; the investigator stops on it. Appends to one
ledger run one at a time (a lock): a write the wall-time cut let finish is stored before the
failure entry that follows it, never beside it at the same position.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import orjson
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from agentwatch.soc.investigations import seal
from agentwatch.soc.investigations.schema import investigation_entries, investigations

GENESIS = "0" * 64
KINDS = ("prompt", "llm_response", "tool_call", "tool_result", "citation", "report", "failure")
FETCH_ROWS = 64


class LedgerWriteFailed(Exception):
    """An entry could not be stored: the investigation may not go on. ``transient``: the store
    failed (trying again may work), not the head or the investigation's status."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def canonical(doc: Any) -> str:
    """The one JSON text of ``doc``: keys sorted, no spaces (orjson)."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def digest(doc: Any) -> str:
    """sha256 of ``doc``'s canonical JSON (how tool results are compared on replay)."""
    return hashlib.sha256(canonical(doc).encode()).hexdigest()


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


class Ledger:
    """The writer of one investigation's ledger (one writer per investigation)."""

    def __init__(self, engine: Engine, investigation_id: str, case_id: str, created_at: float, key: bytes) -> None:
        self.engine = engine
        self.key = key
        self.investigation_id = investigation_id
        self.case_id = case_id
        self.created_at = created_at
        self.seq = 0
        self.head = GENESIS
        self._writing = threading.Lock()

    def append(self, kind: str, payload: dict[str, Any]) -> str:
        """Store the entry; its hash. Raises :class:`LedgerWriteFailed` when it is not stored."""
        with self._writing:
            return self._append(kind, payload)

    def _append(self, kind: str, payload: dict[str, Any]) -> str:
        seq, ts = self.seq + 1, time.time()
        body = canonical(
            {"investigation_id": self.investigation_id, "seq": seq, "kind": kind, "ts": ts, "payload": payload}
        )
        h = chain_hash(self.head, body)
        inv = investigations.c
        try:
            with self.engine.begin() as conn:
                moved = conn.execute(
                    update(investigations)
                    .where(
                        inv.id == self.investigation_id,
                        inv.status == "running",  # not once finished, or marked abandoned by another node
                        inv.entries == self.seq,
                        inv.head_hash == self.head,
                    )
                    .values(
                        entries=seq,
                        head_hash=h,
                        head_mac=seal.head_mac(self.key, self.investigation_id, seq, h),
                        updated_at=ts,
                    )
                )
                if moved.rowcount != 1:
                    raise LedgerWriteFailed(
                        f"ledger: entry {seq} not stored"
                        " (the ledger's head moved, or the investigation is no longer running)"
                    )
                conn.execute(
                    investigation_entries.insert().values(
                        investigation_id=self.investigation_id,
                        seq=seq,
                        case_id=self.case_id,
                        inv_created_at=self.created_at,
                        kind=kind,
                        ts=ts,
                        body=body,
                        prev_hash=self.head,
                        hash=h,
                    )
                )
        except SQLAlchemyError as exc:
            raise LedgerWriteFailed(f"ledger: entry {seq} not stored ({type(exc).__name__})", transient=True) from None
        self.seq, self.head = seq, h
        return h


BAD_MAC = (
    "the ledger's head does not carry this server's MAC (head_mac): the ledger was rewritten without"
    " the server key, or the key changed (auth.jwt_secret, data_dir/jwt.key)"
)


NO_MAC = (
    "the ledger's head carries no MAC (head_mac): it was removed, or the ledger was written before"
    " heads were sealed and not sealed since (agentwatch investigations seal-legacy)"
)


def _bad(seq: int | None, reason: str, count: int, mac: str) -> dict[str, Any]:
    return {"verified": False, "entries": count, "first_bad_seq": seq, "reason": reason, "mac": mac}


def verify(engine: Engine, investigation_id: str, key: bytes) -> dict[str, Any] | None:
    """Whether the stored ledger of the investigation verifies: ``verified``, ``entries``,
    ``first_bad_seq`` and ``reason`` (None when it verifies), and ``mac``: whether the recorded
    head's seal holds under ``key`` (``valid``, ``invalid``, or ``unkeyed``: the head has none).
    A head whose seal does not hold, or that has none, fails with ``first_bad_seq`` None (no
    entry is to blame). None when there is no such investigation."""
    e = investigation_entries.c
    i = investigations.c
    with engine.connect() as conn:
        inv = conn.execute(select(i.entries, i.head_hash, i.head_mac).where(i.id == investigation_id)).first()
        if inv is None:
            return None
        mac = seal.state(key, investigation_id, inv.entries, inv.head_hash, inv.head_mac)
        stmt = (
            select(e.seq, e.kind, e.body, e.prev_hash, e.hash)
            .where(e.investigation_id == investigation_id)
            .order_by(e.seq)
            .execution_options(yield_per=FETCH_ROWS)
        )
        prev, expected, count = GENESIS, 1, 0
        result = conn.execute(stmt)
        try:
            for row in result:
                count += 1
                if row.seq != expected:
                    return _bad(expected, f"entry {expected} is missing", count, mac)
                if row.prev_hash != prev:
                    return _bad(row.seq, "prev_hash is not the hash of the entry before", count, mac)
                if chain_hash(prev, row.body) != row.hash:
                    return _bad(row.seq, "the entry does not hash to its stored hash (changed)", count, mac)
                why = _body_problem(row, investigation_id)
                if why is not None:
                    return _bad(row.seq, why, count, mac)
                prev, expected = row.hash, expected + 1
        finally:
            result.close()
    if count != inv.entries or prev != inv.head_hash:
        first_bad = count + 1 if count < inv.entries else count
        return _bad(first_bad, "the ledger does not end at the recorded head", count, mac)
    if mac == seal.INVALID:
        return _bad(None, BAD_MAC, count, mac)
    if mac == seal.UNKEYED:
        return _bad(None, NO_MAC, count, mac)
    return {"verified": True, "entries": count, "first_bad_seq": None, "reason": None, "mac": mac}


def _body_problem(row: Any, investigation_id: str) -> str | None:
    try:
        doc = orjson.loads(row.body)
    except orjson.JSONDecodeError:
        return "the entry is not JSON"
    if not isinstance(doc, dict) or canonical(doc) != row.body:
        return "the entry is not canonical JSON"
    if doc.get("investigation_id") != investigation_id or doc.get("seq") != row.seq or doc.get("kind") != row.kind:
        return "the entry's investigation, seq or kind differ from its row"
    return None


def seal_unsealed(engine: Engine, key: bytes) -> tuple[int, int]:
    """Seal the heads without a MAC whose chain verifies: (sealed, left unsealed).

    For the ledgers written before heads were sealed, once, by an operator who trusts the database
    as it is (``agentwatch investigations seal-legacy``); never by the server on its own: a head
    without a MAC is what someone who rewrote a ledger in the database would leave, and sealing
    it would vouch for the rewrite. A ledger whose chain does not verify is left unsealed. The
    seal is set only on the head that was checked (compare-and-set), so an append meanwhile is
    harmless."""
    i = investigations.c
    with engine.connect() as conn:
        ids = conn.execute(select(i.id).where(i.head_mac.is_(None))).scalars().all()
    sealed = left = 0
    for iid in ids:
        with engine.connect() as conn:
            head = conn.execute(select(i.entries, i.head_hash).where(i.id == iid)).first()
        if head is None:
            continue
        check = verify(engine, iid, key)
        if check is None or check["reason"] != NO_MAC or check["entries"] != head.entries:
            left += 1
            continue
        with engine.begin() as conn:
            moved = conn.execute(
                update(investigations)
                .where(i.id == iid, i.head_mac.is_(None), i.entries == head.entries, i.head_hash == head.head_hash)
                .values(head_mac=seal.head_mac(key, iid, head.entries, head.head_hash))
            )
        sealed += moved.rowcount
    return sealed, left
