"""The investigator's final answer as a report, and its citations checked against the store.

The model is asked for ``{"summary", "findings": [{"title", "detail", "severity", "evidence":
{"event_ids", "alert_ids"}}]}``, possibly inside a Markdown code fence. Each cited id is looked up:
``exists`` says whether the store holds it now, ``seen`` whether a tool result or the case showed
it to the model. A finding citing nothing, or an id that does not exist, is flagged
(``verified: false`` with ``flags``). An answer that is not such JSON still makes a report: its
text as the summary, no findings, and ``format_error`` saying what was wrong.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, select

from agentwatch.alerts.explain_prompt import clip
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.schema import events

FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
SUMMARY_CHARS = 4_000

Id = Annotated[str, Field(min_length=1, max_length=128)]


class Evidence(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_ids: list[Id] = Field(default_factory=list, max_length=50)
    alert_ids: list[Id] = Field(default_factory=list, max_length=50)


class Finding(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: Annotated[str, Field(min_length=1, max_length=256)]
    detail: Annotated[str, Field(max_length=4_000)] = ""
    severity: Annotated[int, Field(ge=0, le=10)] | None = None
    evidence: Evidence = Field(default_factory=Evidence)


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    summary: Annotated[str, Field(min_length=1, max_length=SUMMARY_CHARS)]
    findings: list[Finding] = Field(default_factory=list, max_length=50)


def parse(content: str) -> tuple[Answer | None, str | None]:
    """(the answer, None) or (None, why it is not the JSON asked for)."""
    text = content.strip()
    fenced = FENCE.match(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, "the answer is not JSON"
    try:
        return Answer.model_validate(doc), None
    except ValidationError as exc:
        err = exc.errors()[0]
        return None, f"{'.'.join(str(p) for p in err.get('loc', ())) or 'answer'}: {err.get('msg', 'invalid')}"


def existing(engine: Engine, event_ids: set[str], alert_ids: set[str]) -> tuple[set[str], set[str]]:
    """The cited event ids and alert ids the store holds."""
    found_events: set[str] = set()
    found_alerts: set[str] = set()
    with engine.connect() as conn:
        ev = sorted(event_ids)
        for i in range(0, len(ev), 500):
            found_events |= set(
                conn.execute(select(events.c.event_id).where(events.c.event_id.in_(ev[i : i + 500]))).scalars()
            )
        al = sorted(alert_ids)
        for i in range(0, len(al), 500):
            found_alerts |= set(conn.execute(select(alerts.c.id).where(alerts.c.id.in_(al[i : i + 500]))).scalars())
    return found_events, found_alerts


def build(engine: Engine, content: str, shown: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the report, its citations in order) of the final answer ``content``; ``shown`` is every
    text the model was shown (the case and the tool results), for ``seen``."""
    answer, error = parse(content)
    if answer is None:
        return {
            "summary": clip(content.strip(), SUMMARY_CHARS),
            "findings": [],
            "format_error": error,
            "flagged": 0,
        }, []
    cited_events = {i for f in answer.findings for i in f.evidence.event_ids}
    cited_alerts = {i for f in answer.findings for i in f.evidence.alert_ids}
    have_events, have_alerts = existing(engine, cited_events, cited_alerts)
    findings, citations, flagged = [], [], 0
    for n, f in enumerate(answer.findings):
        cites = []
        for kind, ids, have in (
            ("event", f.evidence.event_ids, have_events),
            ("alert", f.evidence.alert_ids, have_alerts),
        ):
            for cid in dict.fromkeys(ids):
                cite = {
                    "finding": n,
                    "type": kind,
                    "id": cid,
                    "exists": cid in have,
                    "seen": orjson.dumps(cid).decode() in shown,
                }
                cites.append(cite)
        flags = []
        if not cites:
            flags.append("cites no evidence")
        missing = [c["id"] for c in cites if not c["exists"]]
        if missing:
            flags.append(f"cites evidence that does not exist: {', '.join(missing)}")
        flagged += bool(flags)
        citations.extend(cites)
        findings.append(
            {
                "title": f.title,
                "detail": f.detail,
                "severity": f.severity,
                "evidence": {
                    "event_ids": list(dict.fromkeys(f.evidence.event_ids)),
                    "alert_ids": list(dict.fromkeys(f.evidence.alert_ids)),
                },
                "verified": not flags,
                "flags": flags,
            }
        )
    return {"summary": answer.summary, "findings": findings, "format_error": None, "flagged": flagged}, citations
