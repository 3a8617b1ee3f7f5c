"""``notify_webhook``: POST a JSON summary of the alert (and the run's case) to a URL.

The URL passes the SSRF guard (:mod:`agentwatch.net.ssrf`) when the playbook is saved and
again when the step runs, and every connection is checked once more as it is opened
(``guarded_client``: no DNS rebinding, no redirects followed). Loopback and private receivers
need ``playbooks.allow_private_urls``. One attempt, ``timeout_s`` in all; at most
``playbooks.webhook_max_response_bytes`` of the answer are read; an answer other than 2xx fails
the step. The URL is never logged nor put into a run's output (it may be a credential).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import AfterValidator, Field

from agentwatch.net.ssrf import MAX_URL_LENGTH, SSRFError, UnresolvedHost, check_url, guarded_client
from agentwatch.notify.base import ssrf_refusal
from agentwatch.soc.playbooks.actions.base import Action, ActionError, Params, RunContext
from agentwatch.soc.playbooks.actions.templates import render

MAX_MESSAGE = 2000
MAX_ENTITIES = 20


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class NotifyWebhookParams(Params):
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    timeout_s: float = Field(10.0, ge=0.1, le=30)
    message: Annotated[str, Field(max_length=MAX_MESSAGE), AfterValidator(_no_nul)] = "{alert_title}"


def check_target(url: str, settings: Any) -> None:
    """Raise ValueError("url: rule") when the SSRF guard refuses ``url`` (a host that does not
    resolve now passes: its addresses are checked at connect time)."""
    try:
        check_url(url, allow_private=settings.allow_private_urls)
    except UnresolvedHost:
        pass
    except SSRFError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith("url:") else f"url: {message}") from None


class NotifyWebhook(Action):
    name = "notify_webhook"
    summary = "POST a JSON summary of the alert to a URL (checked by the SSRF guard)"
    permission = "alerts:write"
    params = NotifyWebhookParams

    def check(self, params: Any, settings: Any) -> None:
        check_target(params.url, settings)

    def payload(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        a = ctx.alert
        keys = ("id", "type", "rule_id", "title", "severity", "severity_label", "status", "assignee", "tags")
        alert = {k: a.get(k) for k in keys}
        alert.update(first_seen=a.get("first_seen"), last_seen=a.get("last_seen"))
        alert["entities"] = a.get("entities", [])[:MAX_ENTITIES]
        playbook = ctx.playbook or {}
        return {
            "source": "agentwatch",
            "message": render(params.message, a, MAX_MESSAGE),
            "playbook": {"id": playbook.get("id"), "name": playbook.get("name")},
            "run_id": ctx.run_id or None,
            "case_id": ctx.case_id,
            "alert": alert,
        }

    def _checked(self, ctx: RunContext, params: Any) -> str:
        try:
            check_target(params.url, ctx.aw.settings.playbooks)
        except ValueError as exc:
            raise ActionError(f"refused by the SSRF guard: {str(exc).removeprefix('url: ')}") from None
        return urlsplit(params.url).hostname or ""

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        host = await asyncio.to_thread(self._checked, ctx, params)
        return {"host": host, "sent": False, "would_send": self.payload(ctx, params)}

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        host = await asyncio.to_thread(self._checked, ctx, params)
        cap = ctx.aw.settings.playbooks.webhook_max_response_bytes
        body = orjson.dumps(self.payload(ctx, params))
        try:
            async with asyncio.timeout(params.timeout_s):
                status, size, cut = await self._post(params, body, cap, ctx.aw.settings.playbooks.allow_private_urls)
        except TimeoutError:
            raise ActionError(f"{host}: timed out after {params.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            refusal = ssrf_refusal(exc)
            if refusal is not None and not isinstance(refusal, UnresolvedHost):
                raise ActionError(f"{host}: refused by the SSRF guard at connect time") from None
            raise ActionError(f"{host}: cannot connect ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise ActionError(f"{host}: receiver answered {status}")
        return {"host": host, "status_code": status, "sent_bytes": len(body), "response_bytes": size, "truncated": cut}

    async def _post(self, params: Any, body: bytes, cap: int, allow_private: bool) -> tuple[int, int, bool]:
        """(status, bytes of the answer read, whether more were left unread)."""
        headers = {"Content-Type": "application/json", "User-Agent": "agentwatch-playbooks"}
        async with (
            guarded_client(allow_private=allow_private, timeout=params.timeout_s) as client,
            client.stream("POST", params.url, content=body, headers=headers) as response,
        ):
            size, cut = 0, False
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size >= cap:
                    size, cut = min(size, cap), True
                    break
            return response.status_code, size, cut
