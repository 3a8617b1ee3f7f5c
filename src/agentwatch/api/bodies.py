"""Reading request bodies under a size limit, without trusting Content-Length.

Routes never declare a body parameter: the framework would read the whole body into memory,
however large, before the route runs (and name a malformed one by a byte offset). A JSON
body is read here under the route's cap, then validated by its pydantic model. Every body read
here also counts against the server-wide budget of body bytes held at once
(:mod:`agentwatch.api.body_budget`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from agentwatch.api.body_budget import held_body
from agentwatch.api.errors import ApiError, InvalidRequest, TooLarge
from agentwatch.events.codecs.framing import BodyError, maybe_gunzip


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes. Bytes are taken from the server's body budget as they
    arrive (a slow client holds only what it has sent), so a refusal comes before the body is
    used; a declared length the whole budget could never hold is refused before any is read."""
    held = held_body(request.scope)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidRequest("header content-length: must be an integer") from None
        if length < 0:
            raise InvalidRequest("header content-length: must not be negative")
        if length > limit:
            raise TooLarge(f"body: larger than {limit} bytes")
        if held is not None:
            held.could_hold(length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body: larger than {limit} bytes")
        if held is not None:
            held.take(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


async def read_events_body(request: Request, limit: int) -> bytes:
    """The body, gunzipped when sent with ``Content-Encoding: gzip``, never above ``limit``."""
    body = await read_limited(request, limit)
    try:
        decoded = maybe_gunzip(body, request.headers.get("content-encoding"), limit)
    except BodyError as exc:
        if exc.status == 413:
            raise TooLarge(str(exc)) from None
        if exc.status == 415:
            raise ApiError(str(exc), status=415) from None
        raise InvalidRequest(str(exc)) from None
    if decoded is not body:
        _count_inflated(request, len(decoded) - len(body))
    return decoded


def _count_inflated(request: Request, growth: int) -> None:
    """The inflated bytes take the place of the compressed ones in the body budget (the
    compressed body is dropped when the caller returns)."""
    held = held_body(request.scope)
    if held is None:
        return
    if growth > 0:
        held.take(growth)
    else:
        held.give_back(-growth)


M = TypeVar("M", bound=BaseModel)


async def read_model(request: Request, model: type[M], limit: int, *, optional: bool = False) -> M:
    """The body as ``model``: 413 over ``limit`` bytes (read no further), 400 naming the field
    and the rule otherwise (``body`` for what is not JSON at all). Fields are checked in the
    model's order, as the framework did: a missing field is named before an unknown one."""
    body = await read_limited(request, limit)
    if not body.strip():
        if optional:
            return model()
        raise InvalidRequest("body: a JSON object is required")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})", [{"field": "body", "rule": "malformed JSON"}]) from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())) or "body", "rule": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        raise InvalidRequest(f"{problems[0]['field']}: {problems[0]['rule']}", problems) from None


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request-body entry of a route that reads its body with :func:`read_model`."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
