"""The ATT&CK coverage matrix: which techniques the enabled rules cover, and how many alerts of
a time window carried each of them (behind ``GET /api/v1/attack/coverage``).

Everything comes from what agentwatch holds, nothing is looked up: the tags of the loaded,
enabled rules (Sigma ``attack.execution`` / ``attack.t1059.001``, the ATT&CK tags of ATR,
pack and built-in rules) and the tags of the stored alerts. A technique is placed under
each tactic its rule (or alert) is tagged with, so one technique may sit under several
tactics; one tagged without a tactic goes to the ``unmapped`` group. Sub-techniques are
listed under their parent technique, and the parent's numbers count the rules and alerts
of the parent and of its sub-techniques (each rule or alert once). Only ids are given:
there is no offline list of technique names.

Tactic tags are read in either spelling (``attack.privilege-escalation`` as SigmaHQ writes
it, ``attack.privilege_escalation`` as the rule pack does). ATT&CK v19 retired Defense
Evasion and split it into Stealth (TA0005) and Defense Impairment (TA0112); SigmaHQ uses
the new tactics, the rule pack the old one, so the matrix keeps a Defense Evasion row,
marked ``retired``, for the rules still tagged with it. ATLAS tags (``atlas.aml.t0051``),
ATT&CK group and software tags (``attack.g0032``, ``attack.s0002``) and unknown tactic
names are not part of the matrix.

Alerts are read in one query that fetches only the ``tags`` column of the alerts in the
window whose tags hold ``attack.`` in any letter case (as a rule's tags are read), newest
first and at most ``MAX_ALERTS`` of them (``totals.alerts_truncated`` says when there were
more); the counting is done here. JSON text tags cannot be grouped portably in SQL on both
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from agentwatch.store.alerts_schema import alerts

MAX_ALERTS = 50_000  # alerts of one window read for counting (newest first)
MAX_RULE_IDS = 50  # rule ids listed per technique (the ``rules`` count has them all)
UNMAPPED = "unmapped"


@dataclass(frozen=True)
class Tactic:
    id: str
    shortname: str
    name: str
    retired: bool = False


# The ATT&CK Enterprise tactics in matrix order (v19), with Defense Evasion kept where it stood.
TACTICS: tuple[Tactic, ...] = (
    Tactic("TA0043", "reconnaissance", "Reconnaissance"),
    Tactic("TA0042", "resource-development", "Resource Development"),
    Tactic("TA0001", "initial-access", "Initial Access"),
    Tactic("TA0002", "execution", "Execution"),
    Tactic("TA0003", "persistence", "Persistence"),
    Tactic("TA0004", "privilege-escalation", "Privilege Escalation"),
    Tactic("TA0005", "defense-evasion", "Defense Evasion", retired=True),
    Tactic("TA0005", "stealth", "Stealth"),
    Tactic("TA0112", "defense-impairment", "Defense Impairment"),
    Tactic("TA0006", "credential-access", "Credential Access"),
    Tactic("TA0007", "discovery", "Discovery"),
    Tactic("TA0008", "lateral-movement", "Lateral Movement"),
    Tactic("TA0009", "collection", "Collection"),
    Tactic("TA0011", "command-and-control", "Command and Control"),
    Tactic("TA0010", "exfiltration", "Exfiltration"),
    Tactic("TA0040", "impact", "Impact"),
)
SHORTNAMES = frozenset(t.shortname for t in TACTICS)
TECHNIQUE = re.compile(r"t(\d{4})(?:\.(\d{3}))?")


def attack_tags(tags: Iterable[Any]) -> tuple[set[str], set[str]]:
    """(tactic short names, technique ids such as ``T1059.001``) among ``tags``; the rest is ignored."""
    tactics: set[str] = set()
    techniques: set[str] = set()
    for raw in tags:
        tag = str(raw).strip().lower()
        if not tag.startswith("attack.") or len(tag) > 128:
            continue
        rest = tag[len("attack.") :]
        m = TECHNIQUE.fullmatch(rest)
        if m is not None:
            techniques.add(f"T{m[1]}" + (f".{m[2]}" if m[2] else ""))
            continue
        name = "-".join(rest.replace("_", " ").replace("-", " ").split())
        if name in SHORTNAMES:
            tactics.add(name)
    return tactics, techniques


@dataclass
class Cell:
    rules: set[str] = field(default_factory=set)
    alerts: int = 0


class Matrix:
    """Rules and alerts per group (tactic or ``unmapped``) and technique: each technique as
    tagged (``own``), and each parent with its sub-techniques (``family``)."""

    def __init__(self) -> None:
        self.groups: dict[str, Cell] = {}
        self.own: dict[str, dict[str, Cell]] = {}
        self.family: dict[str, dict[str, Cell]] = {}
        self.covered: set[str] = set()  # technique ids an enabled rule is tagged with
        self.seen: set[str] = set()  # technique ids a rule or an alert is tagged with
        self.rules_tagged = 0
        self.alerts_tagged = 0

    def add(self, tags: Iterable[Any], rule_id: str | None = None, alerts: int = 1) -> None:
        """One enabled rule (``rule_id``), or ``alerts`` alerts with the same tags (no ``rule_id``)."""
        tactics, techniques = attack_tags(tags)
        if not tactics and not techniques:
            return
        if rule_id is None:
            self.alerts_tagged += alerts
        else:
            self.rules_tagged += 1
            self.covered |= techniques
        self.seen |= techniques
        parents = {tid.split(".")[0] for tid in techniques}
        for group in tactics or {UNMAPPED}:
            _count(self.groups.setdefault(group, Cell()), rule_id, alerts)
            own = self.own.setdefault(group, {})
            for tid in techniques:
                _count(own.setdefault(tid, Cell()), rule_id, alerts)
            family = self.family.setdefault(group, {})
            for parent in parents:
                _count(family.setdefault(parent, Cell()), rule_id, alerts)

    def group(self, name: str) -> dict[str, Any]:
        """The techniques of one group by id, each parent with its sub-techniques inside."""
        own = self.own.get(name, {})
        subs: dict[str, list[str]] = {}
        for tid in sorted(own):
            if "." in tid:
                subs.setdefault(tid.split(".")[0], []).append(tid)
        techniques = [
            {**_numbers(parent, cell), "subtechniques": [_numbers(tid, own[tid]) for tid in subs.get(parent, [])]}
            for parent, cell in sorted(self.family.get(name, {}).items())
        ]
        cell = self.groups.get(name, Cell())
        return {"rules": len(cell.rules), "alerts": cell.alerts, "techniques": techniques}


def _count(cell: Cell, rule_id: str | None, alerts: int) -> None:
    if rule_id is None:
        cell.alerts += alerts
    else:
        cell.rules.add(rule_id)


def _numbers(tid: str, cell: Cell) -> dict[str, Any]:
    return {"id": tid, "rules": len(cell.rules), "alerts": cell.alerts, "rule_ids": sorted(cell.rules)[:MAX_RULE_IDS]}


def alert_tags(db: Engine, since: float, until: float, limit: int = MAX_ALERTS) -> tuple[Counter[str], bool]:
    """The tags (JSON text) of the alerts whose span meets [since, until] and whose tags hold
    ``attack.`` (in any case), newest first, at most ``limit``, with how many alerts have each;
    and whether there were more. Alerts of one rule mostly share their tags, so each text is
    read once."""
    stmt = (
        select(alerts.c.tags)
        .where(
            alerts.c.last_seen >= since,
            alerts.c.first_seen <= until,
            # as ``attack_tags`` reads a tag: in any letter case, spaces around it ignored (a
            # plain LIKE would ignore case on SQLite only); the tags are then read one by one
            func.lower(alerts.c.tags).contains("attack.", autoescape=True),
        )
        .order_by(alerts.c.last_seen.desc())
        .limit(limit + 1)
    )
    with db.connect() as conn:
        rows = conn.execute(stmt).scalars().all()
    return Counter(rows[:limit]), len(rows) > limit


def build(rules: Iterable[Any], db: Engine, since: float, until: float) -> dict[str, Any]:
    """The matrix of the enabled ``rules`` (``RuleInfo``) and the alerts of [since, until]."""
    matrix = Matrix()
    enabled = [r for r in rules if r.enabled]
    for rule in enabled:
        matrix.add(rule.tags, rule.id)
    texts, truncated = alert_tags(db, since, until)
    for text, n in texts.items():
        try:
            tags = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(tags, list):
            matrix.add(tags, alerts=n)
    return {
        "tactics": [
            {"id": t.id, "shortname": t.shortname, "name": t.name, "retired": t.retired, **matrix.group(t.shortname)}
            for t in TACTICS
        ],
        "unmapped": matrix.group(UNMAPPED),
        "totals": {
            "techniques": len(matrix.seen),
            "techniques_covered": len(matrix.covered),
            "rules": len(enabled),
            "rules_with_attack_tags": matrix.rules_tagged,
            "alerts": matrix.alerts_tagged,
            "alerts_truncated": truncated,
        },
    }
