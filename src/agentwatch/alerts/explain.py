"""LLM explanations of alerts: one call to an OpenAI-compatible backend, one at a time per alert.

The prompt is built by :mod:`agentwatch.alerts.explain_prompt`; explanations are kept by
:mod:`agentwatch.alerts.explanation_cache`.

The backend is called at ``POST {llm.base_url}/chat/completions`` through the SSRF guard's
client (addresses checked at connect time, redirects never followed), within
``llm.timeout_s`` in all and reading at most :data:`MAX_ANSWER_BYTES`. A failed call keeps nothing.
Expired explanations are deleted when met, by the explainer's purge at most every
:data:`PURGE_EVERY_S` (or ``llm.explanation_ttl_s`` when shorter), and by the maintenance chore.

Exception tree::

    ExplainError        no explanation; the message says why and never holds the api key
     ├─ LlmUnavailable  the backend may not be asked (disabled, refused by the SSRF guard): 503
     ├─ LlmFailed       the backend was asked and failed (time-out, status, answer): 502
     └─ AlertGone       the alert was deleted while the backend explained it; nothing kept: 404
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agentwatch.alerts.explain_prompt import build_messages, clip
from agentwatch.alerts.explanation_cache import answer, cache_key, cached, fingerprint, keep, purge_expired, unusable
from agentwatch.keyed_locks import KeyedLocks
from agentwatch.masking import MASK, mask_text
from agentwatch.net.bounded_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_bounded
from agentwatch.net.ssrf import UnresolvedHost, guarded_client
from agentwatch.notify.base import ssrf_refusal
from agentwatch.store import kv

if TYPE_CHECKING:
    from agentwatch.config import LlmSettings

log = structlog.get_logger("agentwatch.alerts")

PURGE_EVERY_S = 600.0  # at most this long between two purges of expired explanations
MAX_ANSWER_BYTES = 1024 * 1024
UPSTREAM_MESSAGE_CHARS = 200
TEMPERATURE = 0.2


class ExplainError(Exception):
    """No explanation could be made; the message names why and never holds a secret."""


class LlmUnavailable(ExplainError):
    """The backend may not be asked: explanations are off, or its address is refused."""


class LlmFailed(ExplainError):
    """The backend was asked and failed: time-out, connection, status or answer."""


class AlertGone(ExplainError):
    """The alert was deleted while the backend explained it: its explanation is not kept."""


# -- the backend ------------------------------------------------------------------------


async def complete(llm: LlmSettings, messages: list[dict[str, str]]) -> tuple[str, str]:
    """Ask the backend; (explanation in Markdown, model that answered)."""
    if not llm.enabled or not llm.base_url or not llm.model:
        raise LlmUnavailable("llm: disabled (set llm.enabled, llm.base_url and llm.model to explain alerts)")
    body = {
        "model": llm.model,
        "messages": messages,
        "max_tokens": llm.max_tokens,
        "temperature": TEMPERATURE,
        "stream": False,
    }
    return _explanation(await post_chat(llm, body), llm.model)


async def post_chat(llm: LlmSettings, body: dict[str, Any]) -> bytes:
    """POST ``body`` to the backend's ``/chat/completions``: through the SSRF guard's client
    (redirects never followed), within ``llm.timeout_s``, reading at most
    :data:`MAX_ANSWER_BYTES`. The raw answer of a 2xx; else :class:`LlmUnavailable` (the guard
    refused the address) or :class:`LlmFailed`, whose message never holds the api key."""
    key = llm.api_key.get_secret_value() if llm.api_key is not None else ""
    headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        async with (
            asyncio.timeout(llm.timeout_s),
            guarded_client(allow_private=llm.allow_private, timeout=llm.timeout_s) as client,
            client.stream("POST", f"{llm.base_url}/chat/completions", json=body, headers=headers) as response,
        ):
            status = response.status_code
            raw = await _read_bounded(response)
    except (TimeoutError, httpx.TimeoutException):
        raise LlmFailed(f"llm: no answer within llm.timeout_s ({llm.timeout_s:g} s)") from None
    except httpx.HTTPError as exc:
        refusal = ssrf_refusal(exc)
        if refusal is not None and not isinstance(refusal, UnresolvedHost):
            reason = str(refusal).removeprefix("url: ")
            raise LlmUnavailable(f"llm: base_url refused by the SSRF guard at connect time ({reason})") from None
        raise LlmFailed(f"llm: cannot reach the backend ({type(exc).__name__})") from None
    if 300 <= status < 400:
        raise LlmFailed(f"llm: the backend answered {status} (redirects are not followed)")
    if not 200 <= status < 300:
        raise LlmFailed(f"llm: the backend answered {status}{_upstream_message(raw, key)}")
    return raw


async def _read_bounded(response: httpx.Response) -> bytes:
    try:
        return await read_bounded(response, MAX_ANSWER_BYTES)
    except BodyTooLarge:
        raise LlmFailed(f"llm: the answer is larger than {MAX_ANSWER_BYTES} bytes") from None
    except BadEncoding as exc:
        raise LlmFailed(f"llm: {exc}") from None


def _upstream_message(raw: bytes, key: str) -> str:
    """The backend's own error message (``{"error": {"message"}}``), masked and short, as a
    suffix; empty when it gave none."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    error = doc.get("error") if isinstance(doc, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message.strip():
        return ""
    if key:
        message = message.replace(key, MASK)
    return f": {clip(mask_text(message), UPSTREAM_MESSAGE_CHARS)}"


def _explanation(raw: bytes, asked_model: str) -> tuple[str, str]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LlmFailed("llm: the answer is not JSON") from None
    try:
        content = doc["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LlmFailed("llm: the answer has no choices[0].message.content") from None
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "".join(t for t in texts if isinstance(t, str))
    if not isinstance(content, str):
        raise LlmFailed("llm: choices[0].message.content is not text")
    if not content.strip():
        raise LlmFailed("llm: the backend answered with an empty explanation")
    model = doc.get("model")
    return content.strip(), model if isinstance(model, str) and 0 < len(model) <= 256 else asked_model


class Explainer:
    """Explains alerts, one backend call at a time per alert: a second request for an alert
    being explained waits for the first and answers with its result."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._turns = KeyedLocks()
        self._purged_at: float | None = None  # time.monotonic() of the last purge

    async def purge_due(self, llm: LlmSettings) -> None:
        """Delete expired explanations when the last purge is old enough. The server's
        maintenance chore (``agentwatch.maintenance``) purges them too; the explain routes call
        this besides, so a short ``llm.explanation_ttl_s`` is honoured between two rounds."""
        every = min(PURGE_EVERY_S, llm.explanation_ttl_s)
        started = time.monotonic()
        if self._purged_at is not None and started - self._purged_at < every:
            return
        self._purged_at = started  # before the await: concurrent requests do not purge twice
        try:
            gone = await asyncio.to_thread(purge_expired, self.engine, time.time())
        except SQLAlchemyError as exc:  # housekeeping: the request it rides on still gets its answer
            log.warning("alerts.explanations_purge_failed", error=type(exc).__name__)
            return
        if gone:
            log.info("alerts.explanations_purged", deleted=gone, took_s=time.monotonic() - started)

    async def stored(self, llm: LlmSettings, alert: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The cached explanation of ``alert`` and why it may not be answered (None when it
        may); (None, None) when there is none. An expired one is deleted here (read first, so
        this answer can still say it expired; once deleted there is none)."""
        entry = await asyncio.to_thread(cached, self.engine, alert["id"])
        why = None
        if entry is not None:
            why = unusable(entry, fingerprint(alert), llm.model if llm.enabled else None, time.time())
            if why == "expired":
                await asyncio.to_thread(kv.delete_value, self.engine, cache_key(alert["id"]), entry)
        await self.purge_due(llm)
        return entry, why

    async def explain(self, llm: LlmSettings, alert: dict[str, Any]) -> dict[str, Any]:
        """The cached explanation of ``alert`` while it is fresh and made from this alert state
        by this model, else a new one from the backend, stored in its place."""
        await self.purge_due(llm)
        alert_id = alert["id"]
        alert_print = fingerprint(alert)

        async def usable() -> dict[str, Any] | None:
            entry = await asyncio.to_thread(cached, self.engine, alert_id)
            if entry is None or unusable(entry, alert_print, llm.model, time.time()) is not None:
                return None
            return entry

        entry = await usable()
        if entry is not None:
            return answer(entry, was_cached=True)
        async with self._turns.hold(alert_id):
            entry = await usable()
            if entry is not None:
                return answer(entry, was_cached=True)
            started = time.monotonic()
            try:
                text, model = await complete(llm, build_messages(alert))
            except ExplainError as exc:
                log.warning("alerts.explain_failed", alert_id=alert_id, reason=str(exc))
                raise
            now = time.time()
            entry = {
                "alert_id": alert_id,
                "explanation": text,
                "model": model,
                "created_at": now,
                "expires_at": now + llm.explanation_ttl_s,
                "alert_fingerprint": alert_print,
                "asked_model": llm.model,
            }
            if not await asyncio.to_thread(keep, self.engine, alert_id, entry):
                log.info("alerts.explained_deleted_alert", alert_id=alert_id)
                raise AlertGone("alert not found (deleted while it was being explained)")
            log.info(
                "alerts.explained", alert_id=alert_id, model=model, chars=len(text), took_s=time.monotonic() - started
            )
            return answer(entry, was_cached=False)


def explainer_of(aw: Any) -> Explainer:
    """The one explainer of this agentwatch (its per-alert locks are shared by every request)."""
    found = aw.__dict__.get("alert_explainer")
    if found is None:
        found = aw.alert_explainer = Explainer(aw.engine)
    return found
