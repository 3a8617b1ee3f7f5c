"""``/api/v1/federated``: AiSOC's federated query, fanned out to the configured SIEMs.

``POST /query`` parses the query (see :mod:`agentwatch.federated.language`), translates it for
each target and runs it on all of them at once; ``POST /translate`` answers the native query
texts without running anything; ``GET /targets`` lists the configured targets without secrets.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.federated import fanout, spl
from agentwatch.federated.language import Node, QueryError, parse
from agentwatch.federated.settings import FederatedSettings
from agentwatch.federated.spec import FederatedQuery, chosen, shown_window, window

router = APIRouter(prefix="/api/v1/federated", tags=["federated"])
BODY_BYTES = 32 * 1024


def _settings(request: Request) -> FederatedSettings:
    settings = request.app.state.aw.settings.federated
    if not settings.enabled:
        raise NotFound("federated: federated queries are switched off (federated.enabled)")
    return settings


def _parsed(text: str) -> Node:
    try:
        return parse(text)
    except QueryError as exc:
        raise InvalidRequest(str(exc), [{"field": "query", "rule": exc.rule, "position": exc.position}]) from None


async def _read(request: Request) -> tuple[FederatedQuery, Node, Any, list[Any]]:
    body = await read_model(request, FederatedQuery, BODY_BYTES)
    node = _parsed(body.query)
    settings = _settings(request)
    targets = chosen(body.targets, settings)
    request.state.audit_details = {"targets": [t.name for t in targets]}  # names only, never the query
    w = window(body.time_range, settings)
    for t in targets:
        if t.kind == "splunk" and spl.before_epoch(w):
            rule = f"before 1970-01-01T00:00:00Z, which the Splunk target {t.name!r} cannot search (epoch seconds)"
            raise InvalidRequest(f"time_range.from: {rule}", [{"field": "time_range.from", "rule": rule}])
    return body, node, w, targets


@router.get("/targets", dependencies=[require("events:read"), only_query()])
async def list_targets(request: Request) -> dict[str, Any]:
    """The configured targets; a credential shows only as whether its variable is set."""
    out = []
    for t in _settings(request).targets:
        doc = t.model_dump(exclude={"credential_env"})
        doc["field_map"] = fanout.field_map(t) if t.kind != "agentwatch_local" else {}
        doc["credential"] = (
            None
            if t.credential_env is None
            else {"env": t.credential_env, "set": bool(os.environ.get(t.credential_env))}
        )
        out.append(doc)
    return {"targets": out}


@router.post(
    "/translate",
    dependencies=[require("events:read"), only_query()],
    openapi_extra=json_body_doc(FederatedQuery),
)
async def translate(request: Request) -> dict[str, Any]:
    """The query in each target's native language, as ``/query`` would send it; nothing is run."""
    body, node, w, targets = await _read(request)
    engine = request.app.state.aw.engine
    return {
        "query": body.query,
        "time_range": shown_window(w),
        "targets": [
            {"target": t.name, "kind": t.kind, "native_query": fanout.translate(t, node, w, engine)} for t in targets
        ],
    }


@router.post(
    "/query",
    dependencies=[require("events:read"), only_query()],
    openapi_extra=json_body_doc(FederatedQuery),
)
async def query(request: Request) -> dict[str, Any]:
    """Rows from every target (each with its target's name) and each target's status: ok,
    truncated (more than its max_rows), error (with the reason) or timeout."""
    body, node, w, targets = await _read(request)
    answer = await fanout.fan_out(targets, node, w, request.app.state.aw.engine)
    return {"query": body.query, "time_range": shown_window(w), **answer}
