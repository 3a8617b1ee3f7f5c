"""``/api/v1/honeytokens`` (AiSOC's honeytoken routes): create canary secrets and URLs to
plant where an AI agent may read them, list and read them, revoke them, and read their
touches and statistics. Reading needs ``alerts:read``; creating and revoking
``honeytokens:write``. The public tracking route lives in :mod:`.track`.

A token's full value is in the answer to the request creating it and nowhere else: store it
then (see :mod:`.generate`).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import printable_name, printable_title
from agentwatch.soc.honeytokens import generate, store
from agentwatch.soc.honeytokens.detector import detector_of

router = APIRouter(prefix="/api/v1/honeytokens", tags=["honeytokens"])

TOKEN_ID = re.compile(r"[0-9a-f-]{36}")
Kind = Literal["api_key", "url", "credential", "text"]
Style = Literal["openai", "anthropic", "aws", "github", "generic", "track", "password", "marker"]
Source = Literal["track", "pipeline"]
Status = Literal["active", "revoked"]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=512)]
if set(Kind.__args__) != set(generate.KINDS):  # type: ignore[attr-defined]
    raise RuntimeError("api.Kind and generate.KINDS disagree")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_title)]
    kind: Kind
    style: Style | None = Field(
        None, description="api_key: openai (default), anthropic, aws, github or generic; other kinds have one style"
    )
    description: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] = ""
    location: Annotated[str, Field(max_length=512), AfterValidator(printable_name)] = Field(
        "", description="where it is planted (a repository path, a prompt, a document)"
    )
    username: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._@-]{1,64}$",
        description="credential: the user name (svc-<6 letters> when left out)",
    )
    prefix: str | None = Field(
        None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$", description="text: put before the marker, with a -"
    )


def _fits_the_kind(body: TokenIn) -> None:
    """The rules tying one field to the kind (400 naming the field)."""
    if body.style is not None and body.style not in generate.STYLES[body.kind]:
        raise InvalidRequest(f"style: {body.kind} takes {', '.join(generate.STYLES[body.kind])}")
    if body.username is not None and body.kind != "credential":
        raise InvalidRequest("username: only a credential has one")
    if body.prefix is not None and body.kind != "text":
        raise InvalidRequest("prefix: only a text marker has one")


def _check_id(token_id: str) -> None:
    if TOKEN_ID.fullmatch(token_id) is None:
        raise InvalidRequest("id: must be a UUID")


def _page(limit: int, cursor: str | None, max_id: int = 36) -> store.Page:
    return store.Page(limit=limit, cursor=keyset_position(cursor, max_id))


@router.post(
    "", status_code=201, dependencies=[require("honeytokens:write"), only_query()], openapi_extra=json_body_doc(TokenIn)
)
async def create_token(request: Request) -> dict[str, Any]:
    """A new honeytoken; the answer holds its full value (``value``, and its ``parts``) once."""
    body = await read_model(request, TokenIn, 16 * 1024)
    _fits_the_kind(body)
    aw = request.app.state.aw
    cfg = aw.settings.honeytokens
    style = body.style or generate.DEFAULT_STYLE[body.kind]
    base = cfg.public_url or str(request.base_url).rstrip("/")
    secret = generate.make(body.kind, style, base_url=base, username=body.username, prefix=body.prefix or "")
    row = {
        "name": body.name,
        "kind": body.kind,
        "style": style,
        "description": body.description,
        "location": body.location,
        "username": secret.username,
        "hint": secret.hint[:160],
        "needles": orjson.dumps([[d, len(n)] for d, n in zip(secret.digests, secret.needles, strict=True)]).decode(),
        "track_digest": generate.digest(secret.track_id) if secret.track_id else None,
        "created_by": principal_name(request, "anonymous")[:256],
    }
    created = await run_in_threadpool(store.create, aw.engine, row, cfg.max_tokens)
    if created is None:
        raise ApiError(
            f"honeytokens: the store holds at most honeytokens.max_tokens ({cfg.max_tokens:,}) tokens",
            status=507,
            code="INSUFFICIENT_STORAGE",
        )
    await run_in_threadpool(detector_of(aw).reload)
    request.state.audit_details = {"honeytoken": created["id"], "kind": body.kind}
    return {**created, "value": secret.value, "parts": secret.parts or {"value": secret.value}}


@router.get("", dependencies=[require("alerts:read"), only_query("q", "kind", "status", "limit", "cursor")])
async def list_tokens(
    request: Request,
    q: Annotated[str | None, Query(min_length=1, max_length=128, description="part of the name")] = None,
    kind: Kind | None = None,
    status: Status | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Honeytokens, newest first (never their values); ``next_cursor`` goes on from the last one."""
    page = _page(limit, cursor)
    rows, total, nxt = await run_in_threadpool(store.search, request.app.state.aw.engine, page, kind, status, q)
    return {"honeytokens": rows, "total": total, "next_cursor": nxt}


@router.get("/events", dependencies=[require("alerts:read"), only_query("token_id", "source", "limit", "cursor")])
async def list_events(
    request: Request,
    token_id: Annotated[str | None, Query(min_length=36, max_length=36)] = None,
    source: Source | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Touches of every honeytoken, newest first."""
    if token_id is not None:
        _check_id(token_id)
    page = _page(limit, cursor)
    rows, total, nxt = await run_in_threadpool(store.events, request.app.state.aw.engine, page, token_id, source)
    return {"events": rows, "total": total, "next_cursor": nxt}


@router.get("/stats", dependencies=[require("alerts:read"), only_query()])
async def stats(request: Request) -> dict[str, Any]:
    """Tokens by kind and status, touches by source and in the last 24 hours, the most touched."""
    return await run_in_threadpool(store.stats, request.app.state.aw.engine, time.time())


@router.get("/{token_id}", dependencies=[require("alerts:read"), only_query()])
async def get_token(request: Request, token_id: str) -> dict[str, Any]:
    _check_id(token_id)
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, token_id)
    if found is None:
        raise NotFound("honeytoken not found", {"id": token_id})
    return found


@router.delete("/{token_id}", status_code=204, dependencies=[require("honeytokens:write"), only_query()])
async def revoke_token(request: Request, token_id: str) -> Response:
    """Revoke: the token stops matching and its tracking URL records nothing; it and its touches stay."""
    _check_id(token_id)
    aw = request.app.state.aw
    done = await run_in_threadpool(store.revoke, aw.engine, token_id, principal_name(request, "anonymous"))
    if done == "missing":
        raise NotFound("honeytoken not found", {"id": token_id})
    if done == "already":
        raise Conflict("id: the honeytoken is already revoked", {"id": token_id})
    await run_in_threadpool(detector_of(aw).reload)
    request.state.audit_details = {"honeytoken": token_id}
    return Response(status_code=204)


@router.get("/{token_id}/events", dependencies=[require("alerts:read"), only_query("source", "limit", "cursor")])
async def token_events(
    request: Request, token_id: str, source: Source | None = None, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """Touches of one honeytoken, newest first."""
    _check_id(token_id)
    engine = request.app.state.aw.engine
    if await run_in_threadpool(store.get, engine, token_id) is None:
        raise NotFound("honeytoken not found", {"id": token_id})
    page = _page(limit, cursor)
    rows, total, nxt = await run_in_threadpool(store.events, engine, page, token_id, source)
    return {"events": rows, "total": total, "next_cursor": nxt}
