"""Replacing and deleting uploaded Sigma rules in the engine's one rule store (and the two
writes of the AiSOC face that must not race another node: a flag set only on a row that still
exists, :func:`set_flag`, and an upload stored disabled from its first write, :func:`create_disabled`).

An upload may hold several rules (a YAML file of documents, e.g. a correlation and the
rules it counts): they are stored as one row per rule, each with the whole text, and the
engine loads each distinct text once. So the unit of a replacement is that file: PUT on
any of its rules replaces the whole text, which must still define that rule; its rules
missing from the new text are removed, those kept keep their enable flag. A rule can be
deleted alone only when its file holds no other rule (else :class:`Refused` says which to
replace). Rules that are not uploads (the ATR set, the agentwatch pack, built-in
detectors, Sigma directories) are never replaced or deleted: :class:`Refused` says why.

Each change bumps the revision other nodes watch (:mod:`agentwatch.detect.rule_sync`) in
the same transaction, then the engine reloads. Validation is the upload's own
(``sigma.load_rule``: the rule reader's limits, the ReDoS guard, field mapping).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.detect.engine import (
    DetectionEngine,
    RuleConflict,
    RuleInfo,
    SigmaUnavailable,
    StoreFull,
    sigma_module,
    uploaded_infos,
)
from agentwatch.detect.rule_sync import apply_flag, bump_in
from agentwatch.detect.schema import detect_rules


class Refused(Exception):
    """The rule cannot be changed this way; the message says why."""

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id


class Mismatch(ValueError):
    """The new YAML does not define the rule named in the path."""


WHY_NOT = {
    "atr": "it is an ATR rule shipped with agentwatch",
    "pack": "it belongs to agentwatch's bundled rule pack",
    "builtin": "it is a built-in detector",
    "sigma": "it is loaded from a configured Sigma rule directory (detection.sigma_rules_dirs)",
}


def _editable(engine: DetectionEngine, rule_id: str, verb: str) -> RuleInfo:
    engine.ensure_loaded()
    info = engine.infos.get(rule_id)
    if info is None:
        raise KeyError(rule_id)
    if not info.uploaded:
        why = WHY_NOT.get(info.format, "it is not an uploaded rule")
        raise Refused(rule_id, f"rule_id: {rule_id} cannot be {verb}: {why}; it can only be enabled or disabled")
    return info


def _group_where(rule_id: str) -> Any:
    """Rows uploaded in the same text as ``rule_id`` (an alias: never correlated to the outer table)."""
    own = detect_rules.alias("own")
    text = select(own.c.yaml).where(own.c.rule_id == rule_id).scalar_subquery()
    return and_(detect_rules.c.uploaded.is_(True), detect_rules.c.yaml == text)


def _group(conn: Any, rule_id: str) -> dict[str, Any]:
    """The stored rows (rule id -> row) uploaded in the same text as ``rule_id``."""
    rows = conn.execute(select(detect_rules).where(_group_where(rule_id))).all()
    return {r.rule_id: r for r in rows}


def _take_group(conn: Any, rule_id: str) -> dict[str, Any]:
    """Delete the rows of ``rule_id``'s text and return them, as one statement: the flags and rows
    returned are those the delete removed, never an earlier read another node changed since.

    Twice when the first finds nothing: on PostgreSQL a delete that waited on another node's
    replacement skips the rows it replaced and cannot see those it wrote; a second statement does."""
    for _ in range(2):
        rows = conn.execute(delete(detect_rules).where(_group_where(rule_id)).returning(*detect_rules.c)).all()
        if rows:
            break
    return {r.rule_id: r for r in rows}


def _check_room(conn: Any, engine: DetectionEngine, leaving: list[str], adding: int, text: str) -> None:
    """StoreFull unless the upload store has room for ``adding`` rules of ``text`` once the rows
    of ``leaving`` are gone."""
    others = (
        conn.execute(
            select(detect_rules.c.yaml).where(detect_rules.c.uploaded.is_(True), detect_rules.c.rule_id.not_in(leaving))
        )
        .scalars()
        .all()
    )
    if len(others) + adding > engine.settings.max_uploaded_rules:
        raise StoreFull(f"rules: the upload store holds at most {engine.settings.max_uploaded_rules} rules")
    used = sum(len(y.encode()) for y in dict.fromkeys(others))
    if used + len(text.encode()) > engine.settings.max_upload_bytes:
        raise StoreFull(f"yaml: the upload store holds at most {engine.settings.max_upload_bytes} bytes")


def _rows(rules: list[Any], text: str, old: dict[str, Any], now: float, enabled: bool) -> list[dict[str, Any]]:
    """The stored rows of ``rules``: a rule kept from ``old`` keeps its flag and creation time."""
    return [
        {
            "rule_id": r.id,
            "format": "sigma",
            "enabled": bool(old[r.id].enabled) if r.id in old else enabled,
            "uploaded": True,
            "title": r.title[:1000],
            "yaml": text,
            "created_at": old[r.id].created_at if r.id in old else now,
            "updated_at": now,
        }
        for r in rules
    ]


def create_disabled(engine: DetectionEngine, text: str) -> list[RuleInfo]:
    """Store and load uploaded Sigma YAML whose rules start disabled: stored so from the first
    write, so no node (this one or one comparing meanwhile) ever runs them enabled. Raises as
    the upload does (the Sigma module's SigmaLoadError, RuleConflict, StoreFull, SigmaUnavailable)."""
    sigma = sigma_module()
    if sigma is None:
        raise SigmaUnavailable("sigma: this build has no Sigma compiler")
    engine.ensure_loaded()
    rules = sigma.load_rule(text, "<upload>")
    seen: set[str] = set()
    for r in rules:
        if r.id in engine.infos or r.id in seen:
            raise RuleConflict(r.id)
        seen.add(r.id)
    if engine.db is None:
        raise StoreFull("rules: this engine has no store for uploaded rules")
    with engine.db.begin() as conn:
        _check_room(conn, engine, [], len(rules), text)
        try:
            conn.execute(detect_rules.insert(), _rows(rules, text, {}, time.time(), False))
        except IntegrityError:  # a concurrent upload of the same id won the race
            raise RuleConflict(rules[0].id) from None
    engine.reload()
    infos = uploaded_infos(rules, text)
    for info in infos:
        info.enabled = False
    return infos


def replace(
    engine: DetectionEngine, rule_id: str, text: str, *, dry_run: bool = False
) -> tuple[list[RuleInfo], list[str], str | None]:
    """Replace the uploaded text defining ``rule_id`` by ``text``; (the new rules, ids removed,
    the store's new revision: None for a dry run).

    Raises KeyError (no such rule), Refused, Mismatch, the Sigma module's SigmaLoadError,
    RuleConflict, StoreFull or SigmaUnavailable."""
    sigma = sigma_module()
    if sigma is None:
        raise SigmaUnavailable("sigma: this build has no Sigma compiler")
    _editable(engine, rule_id, "replaced")
    rules = sigma.load_rule(text, "<upload>")
    ids = [r.id for r in rules]
    if rule_id not in ids:
        raise Mismatch(f"yaml: must define the rule {rule_id} (the id in the path); it defines {', '.join(ids)}")
    seen: set[str] = set()
    for rid in ids:
        if rid in seen:
            raise RuleConflict(rid)
        seen.add(rid)
    if engine.db is None:
        raise StoreFull("rules: this engine has no store for uploaded rules")
    now = time.time()
    with engine.db.begin() as conn:
        # a dry run only reads; a replacement takes the old rows in the delete itself, so a flag
        # set or a delete committed by another node meanwhile is what it sees (the transaction
        # rolls back on any refusal below)
        old = _group(conn, rule_id) if dry_run else _take_group(conn, rule_id)
        if rule_id not in old:
            raise KeyError(rule_id)  # deleted meanwhile
        for rid in ids:
            if rid not in old and rid in engine.infos:
                raise RuleConflict(rid)
        _check_room(conn, engine, list(old), len(ids), text)
        removed = [rid for rid in old if rid not in seen]
        if dry_run:
            return uploaded_infos(rules, text), removed, None
        try:
            conn.execute(detect_rules.insert(), _rows(rules, text, old, now, True))
        except IntegrityError:  # a rule of that id was stored meanwhile (an enable flag of a new rule)
            raise RuleConflict(next(r for r in ids if r not in old)) from None
        revision = bump_in(conn)
    engine.reload()
    return uploaded_infos(rules, text), removed, revision


def remove(
    engine: DetectionEngine,
    rule_id: str,
    *,
    along: Collection[str] = (),
    check: Callable[[dict[str, Any]], None] | None = None,
) -> str:
    """Delete the uploaded rule ``rule_id`` (and the rules of its file named in ``along``: the
    marketplace removes a detection's whole file); the store's new revision. Raises KeyError or
    Refused. ``check`` sees the rows about to go (rule id -> row) in the deleting transaction and
    may raise to keep them (the marketplace keeps a rule that is no longer the one it installed)."""
    _editable(engine, rule_id, "deleted")
    if engine.db is None:
        raise KeyError(rule_id)
    with engine.db.begin() as conn:
        # delete the whole file's rows and refuse (rolling back) unless it held only this rule:
        # a replacement committed meanwhile may have added rules to it
        group = _take_group(conn, rule_id)
        if rule_id not in group:
            raise KeyError(rule_id)
        if check is not None:
            check(group)
        others = sorted(rid for rid in group if rid != rule_id and rid not in along)
        if others:
            raise Refused(
                rule_id,
                f"rule_id: {rule_id} was uploaded in one YAML file with {', '.join(others[:10])}; "
                f"replace that file without it (PUT /api/v1/rules/{others[0]})",
            )
        revision = bump_in(conn)
    engine.reload()
    return revision


def set_flag(engine: DetectionEngine, rule_id: str, enabled: bool) -> RuleInfo:
    """Enable or disable ``rule_id``. A bundled rule's flag row is written as the Sigma face
    writes it; an uploaded rule's flag is set only on its stored row, so a rule another node
    deleted meanwhile raises KeyError instead of leaving a flag row that blocks its id."""
    engine.ensure_loaded()
    info = engine.infos.get(rule_id)
    if info is None:
        raise KeyError(rule_id)
    if not info.uploaded or engine.db is None:
        return engine.set_enabled(rule_id, enabled)
    stmt = update(detect_rules).where(detect_rules.c.rule_id == rule_id, detect_rules.c.uploaded.is_(True))
    # twice: on PostgreSQL an update that waited on a replacement committed meanwhile skips the
    # row it replaced and cannot see the one it wrote; a second statement sees the new row
    for _ in range(2):
        with engine.db.begin() as conn:
            if conn.execute(stmt.values(enabled=enabled, updated_at=time.time())).rowcount == 1:
                break
    else:
        raise KeyError(rule_id)
    apply_flag(engine, rule_id, enabled)
    return engine.infos.get(rule_id, info)
