"""``/api/v1/intel``: indicators of compromise (AiSOC's intel routes): search, add, read,
delete, and enrich one indicator with what agentwatch knows of it.

Adding takes up to 10,000 indicators per request; each is checked alone: the valid ones are
stored and the others answered with their index, field and rule (a request with none valid
is a 400). The same kind and value given again updates the stored indicator.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_limited, read_model
from agentwatch.api.errors import ApiError, InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import require
from agentwatch.api.text_rules import printable_name
from agentwatch.entities import search as entity_search
from agentwatch.events.entities import entity_id
from agentwatch.events.model import EventError, parse_ts
from agentwatch.intel import store
from agentwatch.intel.indicators import KINDS, BadIndicator, classify, normalize
from agentwatch.intel.matcher import matcher_of

router = APIRouter(prefix="/api/v1/intel", tags=["intel"])

MAX_ITEMS = 10_000
MAX_BODY = 4 * 1024 * 1024
MAX_ERRORS = 1_000
IOC_ID = re.compile(r"[0-9a-f-]{36}")
Kind = Literal["ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email"]
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_name)]
Tag = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable_name)]
assert set(Kind.__args__) == set(KINDS)  # type: ignore[attr-defined]


def _no_nul(value: str) -> str:
    # free text keeps its newlines and tabs; NUL would be stored differently on PostgreSQL
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_a_feed(value: str) -> str:
    # a feed's sync removes the indicators of its source that its list no longer holds
    if value.lower().startswith("feed:"):
        raise ValueError("the prefix feed: names the sources of intel.feeds")
    return value


class IocIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Kind | None = Field(None, description="the kind; guessed from the value when left out")
    value: str = Field(min_length=1, max_length=2048)
    source: Annotated[Name, AfterValidator(_not_a_feed)] = "api"
    severity: int | None = Field(
        None, ge=0, le=10, strict=True, description="0-10 (a JSON integer); intel.default_severity when left out"
    )
    description: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] = ""
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    expires_at: str | None = Field(None, max_length=64, description="RFC 3339; the indicator stops matching then")


def _indicator(doc: Any, default_severity: int) -> store.Indicator:
    """One item as an indicator; raises ValueError("field: rule")."""
    try:
        item = IocIn.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}") from None
    try:
        kind = item.type or classify(item.value)
        value = normalize(kind, item.value)
    except BadIndicator as exc:
        raise ValueError(f"value: {exc}") from None
    try:
        expires = parse_ts(item.expires_at, "expires_at") if item.expires_at is not None else None
    except EventError as exc:
        raise ValueError(f"expires_at: {exc.rule}") from None
    severity = default_severity if item.severity is None else item.severity
    return store.Indicator(kind, value, item.source, severity, item.description, item.tags, expires)


def _items(body: bytes) -> list[Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"iocs"}:
        raise InvalidRequest('body: must be an object with exactly one field, "iocs"')
    items = doc["iocs"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidRequest(f"iocs: must be a list of 1 to {MAX_ITEMS:,} indicators")
    return items


class IocBatch(BaseModel):  # for the API description only: the route reads its body item by item
    iocs: list[IocIn] = Field(min_length=1, max_length=MAX_ITEMS)


@router.post("/iocs", dependencies=[require("intel:write"), only_query()], openapi_extra=json_body_doc(IocBatch))
async def add_iocs(request: Request) -> dict[str, Any]:
    """Add or update indicators; counts, and each refused item with its index and the rule."""
    aw = request.app.state.aw
    items = _items(await read_limited(request, MAX_BODY))
    good: list[store.Indicator] = []
    errors: list[dict[str, Any]] = []
    for index, doc in enumerate(items):
        try:
            good.append(_indicator(doc, aw.settings.intel.default_severity))
        except ValueError as exc:
            field, _, rule = str(exc).partition(": ")
            errors.append({"index": index, "field": f"iocs.{index}.{field}", "reason": rule})
    if not good:
        first = errors[0]
        raise InvalidRequest(f"{first['field']}: {first['reason']}", {"errors": errors[:MAX_ERRORS]})
    done = await run_in_threadpool(store.add, aw.engine, good, aw.settings.intel.max_indicators)
    if done is None:
        raise ApiError(
            f"iocs: the store holds at most intel.max_indicators ({aw.settings.intel.max_indicators:,}) indicators",
            status=507,
            code="INSUFFICIENT_STORAGE",
        )
    await run_in_threadpool(matcher_of(aw).reload)
    created, updated = done
    return {
        "accepted": len(good),
        "created": created,
        "updated": updated,
        "rejected": len(errors),
        "errors": errors[:MAX_ERRORS],
    }


@router.get("/iocs", dependencies=[require("alerts:read"), only_query("q", "type", "source", "limit", "cursor")])
async def list_iocs(
    request: Request,
    q: Annotated[str | None, Query(min_length=1, max_length=256, description="part of the value")] = None,
    type: Kind | None = None,
    source: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> dict[str, Any]:
    """Indicators, newest first; ``next_cursor`` goes on from the last one."""
    at = keyset_position(cursor, 36)
    query = store.IocQuery(q=q, kind=type, source=source, limit=limit, cursor=at)
    rows, total, nxt = await run_in_threadpool(store.search, request.app.state.aw.engine, query)
    return {"iocs": rows, "total": total, "next_cursor": nxt}


def _check_id(ioc_id: str) -> None:
    if IOC_ID.fullmatch(ioc_id) is None:
        raise InvalidRequest("ioc_id: must be a UUID")


@router.get("/iocs/{ioc_id}", dependencies=[require("alerts:read"), only_query()])
async def get_ioc(request: Request, ioc_id: str) -> dict[str, Any]:
    _check_id(ioc_id)
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, ioc_id)
    if found is None:
        raise NotFound("indicator not found", {"ioc_id": ioc_id})
    return found


@router.delete("/iocs/{ioc_id}", status_code=204, dependencies=[require("intel:write"), only_query()])
async def delete_ioc(request: Request, ioc_id: str) -> Response:
    _check_id(ioc_id)
    aw = request.app.state.aw
    if not await run_in_threadpool(store.remove, aw.engine, ioc_id):
        raise NotFound("indicator not found", {"ioc_id": ioc_id})
    await run_in_threadpool(matcher_of(aw).reload)
    return Response(status_code=204)


class EnrichIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicator: str = Field(min_length=1, max_length=2048)
    type: Kind | None = None


@router.post(
    "/enrich",
    dependencies=[require("alerts:read", also={"events:read": "it says when events named the value"}), only_query()],
    openapi_extra=json_body_doc(EnrichIn),
)
async def enrich(request: Request) -> dict[str, Any]:
    """What agentwatch knows of one indicator: its kind and canonical form, the stored indicators
    it meets (for an address, the networks holding it; for a domain, the names above it), and for
    an address or a domain the entity of that value in the entity index (null when no event named it)."""
    body = await read_model(request, EnrichIn, 16 * 1024)
    try:
        kind = body.type or classify(body.indicator)
        value = normalize(kind, body.indicator)
    except BadIndicator as exc:
        raise InvalidRequest(f"indicator: {exc}") from None
    aw = request.app.state.aw
    hits = await run_in_threadpool(matcher_of(aw).lookup, kind, value)
    seen = None
    if kind in ("ip", "domain"):  # what the entity index knows of it (the same value as an entity)
        seen = await run_in_threadpool(entity_search.get, aw.engine, entity_id(kind, value))
    return {
        "indicator": body.indicator,
        "type": kind,
        "value": value,
        "matches": [h.as_json() for h in hits],
        "entity": seen,
    }
