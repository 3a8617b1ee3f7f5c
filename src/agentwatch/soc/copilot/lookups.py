"""The reads the suggestions are made of: alerts sharing entities, open cases linking alerts,
SLA clocks, a rule's labels and volume, a playbook's recent runs. Each is bounded."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Engine, func, or_, select

from agentwatch.detect.schema import alert_feedback
from agentwatch.soc.cases.schema import case_alerts, cases
from agentwatch.soc.playbooks.schema import playbook_runs
from agentwatch.soc.sla import store as sla_store
from agentwatch.soc.sla.bands import band_of
from agentwatch.soc.sla.schema import sla_marks
from agentwatch.store.alerts_schema import alerts

MAX_ENTITIES = 16  # entities of a resource looked for in other alerts
MAX_RELATED = 200  # other alerts read at most
OPEN_CASE = ("open", "investigating")


def entity_ids_of(entity_ids_column: str) -> list[str]:
    return [e for e in entity_ids_column.split() if e][:MAX_ENTITIES]


def alert_rows(engine: Engine, alert_ids: list[str]) -> list[Any]:
    if not alert_ids:
        return []
    with engine.connect() as conn:
        return list(conn.execute(select(alerts).where(alerts.c.id.in_(alert_ids))))


def alerts_on(engine: Engine, entity_ids: list[str], exclude: set[str]) -> list[Any]:
    """Alerts not closed naming any of ``entity_ids`` (newest first), ``exclude`` left out."""
    if not entity_ids:
        return []
    cond = or_(*(alerts.c.entity_ids.contains(i, autoescape=True) for i in entity_ids[:MAX_ENTITIES]))
    stmt = (
        select(alerts)
        .where(cond, alerts.c.status != "closed")
        .order_by(alerts.c.last_seen.desc(), alerts.c.id)
        .limit(MAX_RELATED + len(exclude))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    wanted = set(entity_ids)
    # contains() is a substring test: keep only whole ids
    return [r for r in rows if r.id not in exclude and wanted & set(r.entity_ids.split())][:MAX_RELATED]


def open_cases_linking(engine: Engine, alert_ids: list[str]) -> dict[str, tuple[Any, list[str]]]:
    """Open or investigating cases linking any of ``alert_ids``: case id -> (row, those alerts)."""
    if not alert_ids:
        return {}
    stmt = (
        select(cases, case_alerts.c.alert_id)
        .join(case_alerts, case_alerts.c.case_id == cases.c.id)
        .where(case_alerts.c.alert_id.in_(alert_ids), cases.c.status.in_(OPEN_CASE))
        .order_by(cases.c.updated_at.desc(), cases.c.id)
    )
    out: dict[str, tuple[Any, list[str]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            out.setdefault(row.id, (row, []))[1].append(row.alert_id)
    return out


def cases_of(engine: Engine, alert_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(case_alerts.c.case_id).where(case_alerts.c.alert_id == alert_id)).scalars())


def _life_starts(engine: Engine, rows: list[Any]) -> dict[str, float]:
    """When the current life of each alert of ``rows`` started, as the SLA watch counts it
    (:mod:`agentwatch.soc.sla.lives`): its creation; the start the watch noted when it saw the
    alert reopened; or, reopened since the watch last saw it closed, the reopening itself (the
    alert's ``updated_at``, which the watch's next pass takes as the new start)."""
    m = sla_marks.c
    with engine.connect() as conn:
        marks = {r.alert_id: r for r in conn.execute(select(sla_marks).where(m.alert_id.in_([r.id for r in rows])))}
    out = {}
    for r in rows:
        mark = marks.get(r.id)
        if mark is None or mark.started_at is None:
            out[r.id] = r.created_at
        elif mark.closed_at is not None and r.status != "closed":
            out[r.id] = r.updated_at
        else:
            out[r.id] = mark.started_at
    return out


def sla_clocks(engine: Engine, rows: list[Any], now: float | None = None) -> list[dict[str, Any]]:
    """The running SLA clocks of alerts ``rows``: each ``{alert_id, kind, band, due_at,
    minutes}`` (acknowledge while the alert is open, resolve while it is not closed), judged as
    the SLA watch judges them: from the start of the alert's current life, by the targets in
    force, each limit from its own start (a disabled band has none); soonest first."""
    if not rows:
        return []
    moment = time.time() if now is None else now
    targets = sla_store.targets(engine)
    starts = _life_starts(engine, rows)
    out = []
    for r in rows:
        target = targets.get(band_of(r.severity).id)
        if target is None or not target[0].enabled:
            continue
        t = target[0]
        running = []
        if r.status == "open":
            running.append("acknowledge")
        if r.status != "closed":
            running.append("resolve")
        for kind in running:
            minutes = t.minutes(kind)
            due = max(starts[r.id] + minutes * 60, t.starts(kind))
            out.append({"alert_id": r.id, "kind": kind, "band": t.band, "due_at": due, "minutes": minutes})
    out.sort(key=lambda c: (c["due_at"], c["alert_id"]))
    for c in out:
        c["left_s"] = c["due_at"] - moment
    return out


def rule_labels(engine: Engine, rule_id: str) -> dict[str, int]:
    """How many of the rule's alerts are labelled true and false positive (each alert by its
    newest verdict). Counted in the store: one row per verdict comes back, however many labels
    the rule's alerts hold."""
    f = alert_feedback.c
    newest_first = func.row_number().over(partition_by=f.alert_id, order_by=(f.created_at.desc(), f.id.desc()))
    ranked = (
        select(f.feedback.label("verdict"), newest_first.label("rank"))
        .join(alerts, alerts.c.id == f.alert_id)
        .where(alerts.c.rule_id == rule_id)
        .subquery()
    )
    stmt = (
        select(ranked.c.verdict, func.count())
        .where(ranked.c.rank == 1, ranked.c.verdict.in_(("tp", "fp")))
        .group_by(ranked.c.verdict)
    )
    with engine.connect() as conn:
        counted = {verdict: int(n) for verdict, n in conn.execute(stmt)}
    return {"tp": counted.get("tp", 0), "fp": counted.get("fp", 0)}


def rule_volume(engine: Engine, rule_id: str, since: float) -> dict[str, int]:
    """Alerts the rule raised (stored since ``since``) and the findings they gathered."""
    stmt = select(func.count(), func.coalesce(func.sum(alerts.c.count), 0)).where(
        alerts.c.rule_id == rule_id, alerts.c.created_at >= since
    )
    with engine.connect() as conn:
        n, findings = conn.execute(stmt).one()
    return {"alerts": int(n), "findings": int(findings)}


def recent_runs(engine: Engine, playbook_id: str, limit: int) -> list[dict[str, Any]]:
    """The playbook's newest runs that were not dry runs: status, start and the first error (or,
    with no failed step, the run's reason: why it was interrupted)."""
    c = playbook_runs.c
    stmt = (
        select(c.id, c.status, c.started_at, c.steps, c.alert_id, c.reason)
        .where(c.playbook_id == playbook_id, c.dry_run.is_(False), c.status != "running")
        .order_by(c.started_at.desc(), c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for r in rows:
        steps = orjson.loads(r.steps)
        # a failed step's error; else why the run ended as it did (an interrupted run's reason)
        error = next((s.get("error") for s in steps if s.get("status") == "failed" and s.get("error")), r.reason)
        out.append({"id": r.id, "status": r.status, "started_at": r.started_at, "alert_id": r.alert_id, "error": error})
    return out
