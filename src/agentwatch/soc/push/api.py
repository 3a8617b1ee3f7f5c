"""``/api/v1/push``: Web Push subscriptions of the responder PWA (AiSOC's routes), the test
push, and the server's VAPID public key the browser subscribes with.

Every caller sees and tests only their own subscriptions; a user with ``users:admin`` may
remove anyone's. An API key acts for the user who owns it."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import Conflict, InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.soc.push import store
from agentwatch.soc.push.sender import check_endpoint
from agentwatch.soc.push.service import PushService
from agentwatch.soc.push.spec import SubscriptionIn

router = APIRouter(prefix="/api/v1/push", tags=["push"])
SUBSCRIPTION_ID = re.compile(r"[0-9a-f-]{36}")
BODY_BYTES = 8 * 1024


def _service(request: Request) -> PushService:
    return request.app.state.aw.components["push"]


def owner_of(request: Request) -> str:
    """Whose subscriptions these are: the signed-in user, or the user owning the API key."""
    principal = request.state.principal
    if principal.kind == "api_key":
        return f"user:{principal.extra['owner_id']}"
    return f"{principal.kind}:{principal.id}"


def _enabled(service: PushService) -> None:
    if not service.settings.enabled:
        raise Conflict("push: disabled (push.enabled is false)")


@router.get("/vapid-public-key", dependencies=[require("alerts:read"), only_query()])
async def vapid_public_key(request: Request) -> dict[str, Any]:
    """The server's VAPID public key (base64url uncompressed P-256 point): the
    ``applicationServerKey`` a browser's ``pushManager.subscribe`` needs."""
    service = _service(request)
    vapid = await run_in_threadpool(lambda: service.vapid)
    return {"public_key": vapid.public_key}


@router.get("/subscriptions", dependencies=[require("alerts:read"), only_query()])
async def list_subscriptions(request: Request) -> dict[str, Any]:
    """The caller's own subscriptions, oldest first (at most ``push.max_subscriptions_per_user``)."""
    rows = await run_in_threadpool(store.of_owner, request.app.state.aw.engine, owner_of(request))
    return {"subscriptions": rows}


@router.post(
    "/subscriptions",
    status_code=201,
    dependencies=[require("alerts:read"), only_query()],
    openapi_extra=json_body_doc(SubscriptionIn),
)
async def register_subscription(request: Request, response: Response) -> dict[str, Any]:
    """Register the browser's ``PushSubscription`` (201); the same endpoint again replaces its
    keys and device name (200)."""
    service = _service(request)
    _enabled(service)
    body = await read_model(request, SubscriptionIn, BODY_BYTES)
    try:
        await run_in_threadpool(check_endpoint, body.endpoint, service.settings)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    limit = service.settings.max_subscriptions_per_user
    try:
        found, created = await run_in_threadpool(
            store.register, request.app.state.aw.engine, owner_of(request), body, limit
        )
    except store.TooMany:
        raise Conflict(f"subscriptions: at most {limit} per user (push.max_subscriptions_per_user)") from None
    if not created:
        response.status_code = 200
    return found


@router.delete("/subscriptions/{subscription_id}", status_code=204, dependencies=[require("alerts:read"), only_query()])
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    """Remove one of the caller's subscriptions (anyone's with ``users:admin``)."""
    if SUBSCRIPTION_ID.fullmatch(subscription_id) is None:
        raise InvalidRequest("subscription_id: must be a UUID")
    engine = request.app.state.aw.engine
    owner = await run_in_threadpool(store.owner_of, engine, subscription_id)
    # another user's subscription is answered as missing: its existence is not told
    if owner is None or (owner != owner_of(request) and not request.state.principal.can("users:admin")):
        raise NotFound("subscription not found", {"subscription_id": subscription_id})
    if not await run_in_threadpool(store.remove, engine, subscription_id):
        raise NotFound("subscription not found", {"subscription_id": subscription_id})
    return Response(status_code=204)


@router.post("/test", dependencies=[require("alerts:read"), only_query()])
async def test_push(request: Request) -> dict[str, Any]:
    """Push a test notification to each of the caller's subscriptions; one result each, with
    the push service's status (a 404 or 410 removes the subscription)."""
    service = _service(request)
    _enabled(service)
    results = await service.test(owner_of(request))
    return {"sent": sum(1 for r in results if r["ok"]), "results": results}
