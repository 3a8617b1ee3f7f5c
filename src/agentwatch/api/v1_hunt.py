"""``POST /api/v1/hunt``: a threat hunt asked in words (Seerflow), see :mod:`agentwatch.detect.hunt`.

A question naming an entity the index holds is answered from the store alone (``mode:
entity``); any other is translated into event-search filters by the LLM backend (``mode:
llm``): 503 when the backend is off, 502 when it failed or answered no valid filters, 400 for
a question that is empty or longer than ``llm.hunt_max_query_chars``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts.explain import LlmFailed, LlmUnavailable, complete
from agentwatch.api.bodies import json_body_doc, read_limited
from agentwatch.api.errors import ApiError, InvalidRequest, Unavailable
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.api.text_rules import UNPRINTABLE
from agentwatch.api.v1_events import event_json, search
from agentwatch.detect import hunt, queries
from agentwatch.detect.queries import entity_ids_for
from agentwatch.entities import scores, timeline
from agentwatch.entities.search import as_uuid
from agentwatch.events.entities import entity_id
from agentwatch.store import events as event_store

router = APIRouter(prefix="/api/v1", tags=["hunt"])

EVENTS = 100  # events answered at most
ALERTS = 50  # alerts answered at most
BODY_BYTES = 64 * 1024


class HuntQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, description="the question, at most llm.hunt_max_query_chars characters")


def _question(body: bytes, max_chars: int) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"query"}:
        raise InvalidRequest('body: must be an object with exactly one field, "query"')
    question = doc["query"]
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequest("query: must be a non-empty string")
    if len(question) > max_chars:
        raise InvalidRequest(f"query: longer than llm.hunt_max_query_chars ({max_chars} characters)")
    if UNPRINTABLE.search(question.replace("\n", " ").replace("\t", " ")):
        raise InvalidRequest("query: must not contain control characters")
    return question.strip()


def _known_entity(engine: Any, question: str) -> dict[str, Any] | None:
    """The entity a one-entity question names, if the index holds it."""
    uid = as_uuid(question) if len(question) <= 45 else None
    ids = [uid] if uid else [entity_id(kind, value) for kind, value in hunt.entity_words(question)]
    known = scores.entity_rows(engine, ids)
    for eid in ids:
        if eid in known:
            return {"id": eid, **known[eid]}
    return None


def _entity_hunt(engine: Any, entity: dict[str, Any]) -> dict[str, Any]:
    rows, more = timeline.event_rows(engine, timeline.TimelineQuery(entity_id=entity["id"], limit=EVENTS))
    found, total, _next = queries.list_alerts(engine, queries.AlertQuery(entity=entity["id"], limit=ALERTS))
    return {
        "mode": "entity",
        "entity": {"id": entity["id"], "type": entity["type"], "value": entity["value"]},
        "events": [event_json(r) for r in rows],
        "related": timeline.related(rows, entity["id"]),
        "alerts": found,
        "meta": {"events": len(rows), "more_events": more, "alerts_total": total},
    }


def _alerts_entity(engine: Any, value: str, since: float | None) -> str | None:
    """The first kind of ``value`` with alerts in the window, for a value no kind has events of."""
    for eid in entity_ids_for(value):
        if queries.list_alerts(engine, queries.AlertQuery(since=since, entity=eid, limit=1))[0]:
            return eid
    return None


def _filtered_hunt(
    engine: Any, filters: hunt.HuntFilters, now: float
) -> tuple[list[dict[str, Any]], int, list[Any], str | None]:
    """The events the filters select, the alerts of their entity (one kind of the value: the
    kind the events name, else the first kind with alerts) and that entity's id."""
    since = filters.since(now)
    query = event_store.EventQuery(
        limit=EVENTS,
        event_type=filters.template_id,
        since=since,
        source_format=filters.source,
        min_severity=filters.severity,
        text=filters.q,
    )
    rows, total, eid = search(engine, query, filters.entity)
    if not filters.entity:
        return rows, total, [], None
    eid = eid or _alerts_entity(engine, filters.entity, since)
    alerts = queries.list_alerts(engine, queries.AlertQuery(since=since, entity=eid, limit=ALERTS))[0] if eid else []
    return rows, total, alerts, eid


@router.post(
    "/hunt",
    dependencies=[
        require("events:read", also={"alerts:read": "a hunt answers the alerts it finds"}),
        only_query(),
    ],
    openapi_extra=json_body_doc(HuntQuestion),
)
async def hunt_route(request: Request) -> dict[str, Any]:
    """Answer a question in words: an entity's timeline, or events the model's filters select."""
    aw = request.app.state.aw
    llm = aw.settings.llm
    question = _question(await read_limited(request, BODY_BYTES), llm.hunt_max_query_chars)
    entity = await run_in_threadpool(_known_entity, aw.engine, question)
    if entity is not None:
        return await run_in_threadpool(_entity_hunt, aw.engine, entity)
    if not llm.enabled:
        raise Unavailable("llm: disabled (set llm.enabled, llm.base_url and llm.model to hunt in words)")
    try:
        answer, model = await complete(llm, hunt.messages(question))
        filters = hunt.filters_of(answer)
    except LlmUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except LlmFailed as exc:
        raise ApiError(str(exc), status=502, code="BAD_GATEWAY") from None
    now = time.time()
    rows, total, alerts, eid = await run_in_threadpool(_filtered_hunt, aw.engine, filters, now)
    return {
        "mode": "llm",
        "query": question,
        "filters": hunt.applied(filters, now),
        "model": model,
        "events": rows,
        "alerts": alerts,
        "meta": {"events": len(rows), "events_total": total, "entity_id": eid},
    }
