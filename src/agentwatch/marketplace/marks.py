"""Telling the rules an install made from rules stored under the same ids since.

An install records only rule ids, and an id is not an identity: a person may delete a rule the
marketplace installed and upload a rule of their own with the same id, or change the installed
rule's YAML (``PUT /api/v1/rules/{id}``). So an install also records each rule's *mark*, read from
the rule store right after it wrote them: the SHA-256 of the YAML it stored and the rule's stored
``created_at`` (set when a rule is first stored, kept by a replacement of its file, new for a rule
stored again after a delete). An uninstall deletes a rule only while both still match:

- ``replaced``: another ``created_at`` (deleted and stored again), or the id now names a rule that
  is not an upload;
- ``edited``: the same rule, its YAML changed since: the change is a person's work, which an
  uninstall never throws away (they delete the rule by hand if they want it gone);
- ``unrecognised``: an install recorded before marks were (no ``created_at`` known), whose rule's
  YAML is not the manifest of the installed version as the index verifies it now;
- ``shares_file``: the pack's own rule, uploaded in one file with a rule kept: a file's rules
  only go together.

Enabling or disabling a rule changes neither, so a switched-off rule is still the pack's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, select

from agentwatch.detect.schema import detect_rules

Marks = dict[str, dict[str, Any]]

WHY = {
    "replaced": "it was deleted and a rule was stored again under its id since the install",
    "edited": "its YAML was changed since the install",
    "unrecognised": (
        "it was installed before agentwatch recorded what it installed, and its YAML is not the manifest "
        "of the installed version as the index lists it"
    ),
    "shares_file": "it was uploaded in one YAML file with a rule kept here, and a file's rules only go together",
}


class NotThePacks(Exception):
    """Rules of the file about to be deleted are not what the install made (rule id -> reason)."""

    def __init__(self, kept: dict[str, str]) -> None:
        super().__init__(", ".join(kept))
        self.kept = kept


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def of(text: str, created: Mapping[str, float | None]) -> Marks:
    """The marks of the rules stored from the YAML ``text``: each rule id (of ``created``) -> the
    digest of that text and the rule's stored ``created_at`` (None when it could not be read)."""
    sha = digest(text)
    return {rid: {"sha256": sha, "created_at": at} for rid, at in created.items()}


def stored(db: Engine | None, ids: Iterable[str]) -> dict[str, Any]:
    """The stored uploaded rows of ``ids`` (rule id -> row with ``yaml`` and ``created_at``)."""
    wanted = list(ids)
    if db is None or not wanted:
        return {}
    q = select(detect_rules.c.rule_id, detect_rules.c.yaml, detect_rules.c.created_at).where(
        detect_rules.c.uploaded.is_(True), detect_rules.c.rule_id.in_(wanted)
    )
    with db.connect() as conn:
        return {r.rule_id: r for r in conn.execute(q)}


def _verdict(mark: Mapping[str, Any] | None, row: Any) -> str | None:
    """Why the stored ``row`` is not the rule ``mark`` describes (None: it is)."""
    if row is None:
        return "replaced"
    if mark is None:
        return "unrecognised"
    at = mark.get("created_at")
    if at is not None and abs(float(row.created_at) - float(at)) > 1e-6:
        return "replaced"
    if digest(row.yaml) != mark.get("sha256"):
        return "edited" if at is not None else "unrecognised"
    return None


def judge(ids: Iterable[str], rows: Mapping[str, Any], marks: Marks | None) -> dict[str, str]:
    """The rules of ``ids`` (present in the engine) to keep, with the reason: those ``rows`` (their
    stored uploaded rows) show are not what ``marks`` recorded, and the pack's own rules sharing a
    file with one of them."""
    ids = list(ids)
    kept = {rid: why for rid in ids if (why := _verdict((marks or {}).get(rid), rows.get(rid))) is not None}
    files = {rows[rid].yaml for rid in kept if rid in rows}
    for rid in ids:
        if rid not in kept and rows[rid].yaml in files:
            kept[rid] = "shares_file"
    return kept


def answer(kept: Mapping[str, str]) -> list[dict[str, str]]:
    """The ``kept`` list of an uninstall's answer."""
    return [
        {"rule_id": rid, "reason": why, "message": f"rule_id: {rid} was kept: {WHY[why]}"} for rid, why in kept.items()
    ]
