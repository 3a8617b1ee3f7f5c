"""Sending one encrypted, VAPID-signed message to each of a list of subscriptions.

Per subscription the answer is reported (``status``, ``ok``, ``error``, ``removed``). A push
service answering 404 or 410 has dropped the subscription: it is removed. A 429 is honoured:
the service's ``Retry-After`` (else :data:`DEFAULT_WAIT_S`, at most :data:`MAX_WAIT_S`) is
kept per push-service origin, and no push goes to that origin before it has passed. Redirects
are never followed; every connection goes through the SSRF guard; the answer is read to at most
:data:`MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextvars import ContextVar
from typing import Any

import httpx

from agentwatch.masking import mask_url
from agentwatch.net.bounded_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_bounded
from agentwatch.net.retry_after import retry_after_s
from agentwatch.net.ssrf import SSRFError, check_url, guarded_client
from agentwatch.soc.push import message
from agentwatch.soc.push.settings import PushSettings
from agentwatch.soc.push.spec import unb64url
from agentwatch.soc.push.vapid import Vapid, audience

MAX_ANSWER_BYTES = 16 * 1024
CONCURRENCY = 8
DEFAULT_WAIT_S = 60.0
MAX_WAIT_S = 24 * 3600.0
GONE = frozenset({404, 410})
MAX_HELD_ORIGINS = 1000

# httpx logs each request's URL at INFO; a push endpoint is a capability URL (whoever knows it
# can push to that browser), so while pushing, its path is masked in those records.
_PUSHING: ContextVar[bool] = ContextVar("agentwatch_push_sending", default=False)


class _MaskEndpoints(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _PUSHING.get() and isinstance(record.args, tuple):
            record.args = tuple(
                mask_url(str(a), hide_path=True) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_MaskEndpoints())


def schemes(settings: PushSettings) -> frozenset[str]:
    return frozenset({"https", "http"}) if settings.allow_http else frozenset({"https"})


def check_endpoint(endpoint: str, settings: PushSettings, *, resolve: bool = True) -> str:
    """``endpoint`` when it may be pushed to; ValueError naming ``endpoint`` and the rule."""
    try:
        return check_url(endpoint, allow_private=settings.allow_private, schemes=schemes(settings), resolve=resolve)
    except SSRFError as exc:
        raise ValueError("endpoint: " + str(exc).removeprefix("url: ")) from None


def _refusal(exc: BaseException) -> SSRFError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SSRFError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Sender:
    def __init__(self, settings: PushSettings, vapid: Vapid) -> None:
        self.settings = settings
        self.vapid = vapid
        self.not_before: dict[str, float] = {}  # push-service origin -> wall time it may be asked again

    async def send(self, rows: list[Any], payload: bytes | list[bytes], urgency: str) -> list[dict[str, Any]]:
        """Push ``payload`` (or each of a list of payloads, in order) to every row (a stored
        subscription); one result per row and payload. The rows are served side by side: a
        subscription whose push got no answer, a 429 or a 404/410 is sent none of the rest of
        its payloads (reported as not sent), so one unreachable push service costs at most one
        time limit per subscription and holds nobody else's pushes back."""
        payloads = [payload] if isinstance(payload, bytes) else payload
        if not rows or not payloads:
            return []
        gate = asyncio.Semaphore(CONCURRENCY)
        token = _PUSHING.set(True)
        try:
            async with guarded_client(
                allow_private=self.settings.allow_private, timeout=self.settings.timeout_s
            ) as client:

                async def chain(row: Any) -> list[dict[str, Any]]:
                    out: list[dict[str, Any]] = []
                    for i, body in enumerate(payloads):
                        async with gate:
                            result = await self._one(client, row, body, urgency)
                        out.append(result)
                        if not result["ok"] and (result["removed"] or result["status"] in (None, 429)):
                            out += [self._skipped(row, result) for _ in payloads[i + 1 :]]
                            break
                    return out

                chains = await asyncio.gather(*(chain(r) for r in rows))
                return [result for out in chains for result in out]
        finally:
            _PUSHING.reset(token)

    @staticmethod
    def _skipped(row: Any, failed: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row.id,
            "device_name": row.device_name,
            "status": None,
            "ok": False,
            "error": "not sent: an earlier push of this delivery failed (" + str(failed["error"]) + ")",
            "removed": False,
        }

    async def _one(self, client: httpx.AsyncClient, row: Any, payload: bytes, urgency: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": row.id,
            "device_name": row.device_name,
            "status": None,
            "ok": False,
            "error": None,
            "removed": False,
        }
        try:
            check_endpoint(row.endpoint, self.settings, resolve=False)  # the settings may have changed
        except ValueError as exc:
            result["error"] = str(exc)
            return result
        origin = audience(row.endpoint)
        wait = self.not_before.get(origin, 0.0) - time.time()
        if wait > 0:
            result["error"] = f"push service asked to wait: {wait:.0f} s left"
            result["retry_after_s"] = round(wait)
            return result
        try:
            body = message.encrypt(payload, unb64url(row.p256dh), unb64url(row.auth))
        except Exception:  # keys stored before a stricter check, or a library refusal: never a 5xx
            result["error"] = "keys: cannot encrypt for this subscription"
            return result
        headers = {
            "Authorization": self.vapid.authorization(row.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.settings.ttl_s),
            "Urgency": urgency,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        try:
            async with client.stream("POST", row.endpoint, content=body, headers=headers) as response:
                # the status is the answer; its body is only drained (bounded), never kept
                with contextlib.suppress(BodyTooLarge, BadEncoding):
                    await read_bounded(response, MAX_ANSWER_BYTES)
        except httpx.TimeoutException:
            result["error"] = f"push service timed out after {self.settings.timeout_s:g} s"
            return result
        except httpx.HTTPError as exc:
            refusal = _refusal(exc)
            if refusal is not None:
                result["error"] = "refused by the SSRF guard at delivery (" + str(refusal).removeprefix("url: ") + ")"
            else:
                result["error"] = f"cannot connect to the push service ({type(exc).__name__})"
            return result
        status = response.status_code
        result["status"] = status
        if 200 <= status < 300:
            result["ok"] = True
        elif status in GONE:
            result["removed"] = True
            result["error"] = f"push service answered {status}: the subscription is gone and was removed"
        elif status == 429:
            asked = retry_after_s(response.headers)
            wait_s = min(MAX_WAIT_S, DEFAULT_WAIT_S if asked is None else asked)
            now = time.time()
            if len(self.not_before) >= MAX_HELD_ORIGINS:  # keep only the waits still running
                self.not_before = {o: t for o, t in self.not_before.items() if t > now}
            self.not_before[origin] = max(self.not_before.get(origin, 0.0), now + wait_s)
            result["retry_after_s"] = round(wait_s)
            result["error"] = f"push service answered 429: no push to it for {wait_s:.0f} s"
        elif 300 <= status < 400:
            result["error"] = f"push service answered {status} (redirects are not followed)"
        else:
            result["error"] = f"push service answered {status}"
        return result
