"""The investigator's tools: read-only questions to agentwatch's own store, in the OpenAI
``tools`` format, with their arguments checked and their results masked and bounded.

- ``search_events``: the event search of ``GET /api/v1/events``, newest first, at most
  ``investigations.max_search_events`` events;
- ``get_alert``: one alert with its events (``GET /api/v1/alerts/{id}``);
- ``entity_timeline``: an entity's newest events and related entities, by its value or id;
- ``intel_lookup``: the stored threat-intelligence indicators a value meets (``POST /api/v1/enrich``).

A result is JSON: ``{"error": "field: rule"}`` for arguments the tool refuses, else the data. It
passes :func:`agentwatch.masking.scrub` (no secret recorded in an event reaches the model or the
ledger) and is cut to ``investigations.max_result_chars``: lists lose their last items first
(``<name>_left_out`` says how many), anything still too long becomes clipped text.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentwatch.alerts.explain_prompt import clip
from agentwatch.api.text_rules import ALERT_ID_RE
from agentwatch.api.v1_events import event_json, search
from agentwatch.detect import queries
from agentwatch.detect.queries import entity_ids_for
from agentwatch.entities import search as entity_search
from agentwatch.entities import timeline
from agentwatch.events.entities import entity_id
from agentwatch.events.model import EventError, parse_ts
from agentwatch.intel.indicators import KINDS, BadIndicator, classify, normalize
from agentwatch.intel.matcher import matcher_of
from agentwatch.masking import scrub
from agentwatch.soc.investigations.ledger import canonical
from agentwatch.soc.investigations.settings import InvestigationSettings
from agentwatch.store.events import EventQuery

EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_*]+)*")
LISTS = ("events", "matches", "related")


class ToolRefused(ValueError):
    """The tool's arguments break a rule ("field: rule")."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


Limit = Annotated[int, Field(ge=1, le=200, strict=True)]
Stamp = Annotated[str, Field(min_length=1, max_length=64)]


class SearchArgs(_Args):
    q: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    template_id: Annotated[str, Field(max_length=128)] | None = None
    since: Stamp | None = None
    until: Stamp | None = None
    severity: Annotated[int, Field(ge=0, le=10, strict=True)] | None = None
    entity: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    limit: Limit = 10


class AlertArgs(_Args):
    alert_id: Annotated[str, Field(min_length=1, max_length=64)]


class TimelineArgs(_Args):
    entity: Annotated[str, Field(min_length=1, max_length=512)]
    limit: Limit = 10


class IntelArgs(_Args):
    indicator: Annotated[str, Field(min_length=1, max_length=2048)]
    type: Literal["ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email"] | None = None


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


def definitions(settings: InvestigationSettings) -> list[dict[str, Any]]:
    """The tools as the model is offered them."""
    limit = {"type": "integer", "minimum": 1, "maximum": settings.max_search_events}
    return [
        _fn(
            "search_events",
            "Search stored events, newest first. Filters combine with AND.",
            {
                "q": {"type": "string", "description": "substring of the event"},
                "template_id": {"type": "string", "description": "event type, e.g. ai.request or process.*"},
                "since": {"type": "string", "description": "RFC 3339"},
                "until": {"type": "string", "description": "RFC 3339"},
                "severity": {"type": "integer", "minimum": 0, "maximum": 10, "description": "minimum severity"},
                "entity": {"type": "string", "description": "an entity value (host, ip, user...) or entity id"},
                "limit": limit,
            },
            [],
        ),
        _fn("get_alert", "One alert with its events.", {"alert_id": {"type": "string"}}, ["alert_id"]),
        _fn(
            "entity_timeline",
            "An entity's newest events and the entities they name besides.",
            {"entity": {"type": "string", "description": "the entity's value or id"}, "limit": limit},
            ["entity"],
        ),
        _fn(
            "intel_lookup",
            "The threat-intelligence indicators a value (address, domain, URL, hash, e-mail) meets.",
            {"indicator": {"type": "string"}, "type": {"type": "string", "enum": list(KINDS)}},
            ["indicator"],
        ),
    ]


def _stamp(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_ts(value, field)
    except EventError as exc:
        raise ToolRefused(str(exc)) from None


def _search(aw: Any, s: InvestigationSettings, a: SearchArgs) -> dict[str, Any]:
    if a.template_id is not None and EVENT_TYPE_RE.fullmatch(a.template_id) is None:
        raise ToolRefused("template_id: must be an event type (family.name, a family.* prefix works)")
    limit = min(a.limit, s.max_search_events)
    q = EventQuery(
        limit=limit,
        event_type=a.template_id,
        since=_stamp(a.since, "since"),
        until=_stamp(a.until, "until"),
        min_severity=a.severity,
        text=a.q,
    )
    rows, total, _entity_id = search(aw.engine, q, a.entity)
    return {"total": total, "events": rows}


def _alert(aw: Any, s: InvestigationSettings, a: AlertArgs) -> dict[str, Any]:
    if ALERT_ID_RE.fullmatch(a.alert_id) is None:
        raise ToolRefused("alert_id: must be 1-64 letters, digits or dashes")
    doc = queries.get_alert(aw.engine, a.alert_id)
    if doc is None:
        raise ToolRefused(f"alert_id: no alert {a.alert_id}")
    return {"alert": {k: v for k, v in doc.items() if k != "events"}, "events": doc.get("events") or []}


def _timeline(aw: Any, s: InvestigationSettings, a: TimelineArgs) -> dict[str, Any]:
    for eid in entity_ids_for(a.entity):
        entity = entity_search.get(aw.engine, eid)
        if entity is not None:
            break
    else:
        raise ToolRefused("entity: no entity has this value or id")
    rows, more = timeline.event_rows(
        aw.engine, timeline.TimelineQuery(entity_id=entity["id"], limit=min(a.limit, s.max_search_events))
    )
    return {
        "entity": entity,
        "more": more,
        "events": [event_json(r) for r in rows],
        "related": timeline.related(rows, entity["id"]),
    }


def _intel(aw: Any, s: InvestigationSettings, a: IntelArgs) -> dict[str, Any]:
    try:
        kind = a.type or classify(a.indicator)
        value = normalize(kind, a.indicator)
    except BadIndicator as exc:
        raise ToolRefused(f"indicator: {exc}") from None
    hits = matcher_of(aw).lookup(kind, value)
    seen = entity_search.get(aw.engine, entity_id(kind, value)) if kind in ("ip", "domain") else None
    return {"type": kind, "value": value, "entity": seen, "matches": [h.as_json() for h in hits]}


TOOLS: dict[str, tuple[type[_Args], Any]] = {
    "search_events": (SearchArgs, _search),
    "get_alert": (AlertArgs, _alert),
    "entity_timeline": (TimelineArgs, _timeline),
    "intel_lookup": (IntelArgs, _intel),
}


def _refusal(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
    return f"{where}: {err.get('msg', 'invalid')}"


def run(aw: Any, settings: InvestigationSettings, name: str, arguments: str) -> dict[str, Any]:
    """The result of one tool call (masked, bounded), as given to the model and recorded."""
    found = TOOLS.get(name)
    if found is None:
        return {"error": f"name: no tool {name!r} (one of {', '.join(TOOLS)})"}
    model, fn = found
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"error": "arguments: must be a JSON object"}
    if not isinstance(parsed, dict):
        return {"error": "arguments: must be a JSON object"}
    try:
        args = model.model_validate(parsed)
        return bounded(fn(aw, settings, args), settings.max_result_chars)
    except ValidationError as exc:
        return {"error": _refusal(exc)}
    except ToolRefused as exc:
        return {"error": str(exc)}


def bounded(doc: dict[str, Any], limit: int) -> dict[str, Any]:
    """``doc`` masked and cut to ``limit`` characters of canonical JSON (see the module's docstring)."""
    clean = scrub(doc)
    if len(canonical(clean)) <= limit:
        return clean
    budget = limit - len(canonical({k: ([] if k in LISTS else v) for k, v in clean.items()})) - 64
    for key in LISTS:
        items = clean.get(key)
        if not isinstance(items, list):
            continue
        kept: list[Any] = []
        for item in items:
            size = len(canonical(item)) + 1
            if size > budget:
                break
            kept.append(item)
            budget -= size
        if len(kept) < len(items):
            clean[key] = kept
            clean[f"{key}_left_out"] = len(items) - len(kept)
    text = canonical(clean)
    if len(text) <= limit:
        return clean
    return {"truncated": True, "text": clip(text, max(0, limit - 40))}
