"""What every HTTP alert output shares: spec validation, the guarded client, one POST."""

from __future__ import annotations

import asyncio
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from agentwatch.masking import mask_url
from agentwatch.net.retry_after import retry_after_s
from agentwatch.net.ssrf import SSRFError, UnresolvedHost, check_url, guarded_client

MAX_NAME = 64
MAX_HEADERS = 16
MAX_HEADER_VALUE = 1024
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Headers a user may not set on an output: they belong to the transport or to our signature.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})
COMMON_FIELDS = frozenset({"kind", "name", "url", "min_severity", "timeout_s", "enabled"})
# A message is sent at most MAX_ATTEMPTS times: again after a rate limit (429), a server error
# that says "try later" (500, 502, 503, 504) or a connection that failed or was reset. A receiver's
# Retry-After is kept; one asking for more than MAX_RETRY_AFTER_S is not asked again early.
MAX_ATTEMPTS = 3
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 10.0
BACKOFF_S = (1.0, 2.0)  # before the 2nd and 3rd attempt when the receiver names no wait
RETRY_ERRORS = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class NotifyError(Exception):
    """An alert could not be delivered; the message never contains a secret."""


# httpx logs every request's URL at INFO ("HTTP Request: POST <url> ..."). An output's URL is its
# credential (the path of a Slack, Teams or Workflows webhook), so while an output sends, the
# URLs in httpx's records are logged with their path and query masked.
_SENDING: ContextVar[bool] = ContextVar("agentwatch_notify_sending", default=False)


class _MaskOutputUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SENDING.get() and isinstance(record.args, tuple):
            record.args = tuple(
                mask_url(str(a), hide_path=True) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_MaskOutputUrls())


def check_fields(spec: dict[str, Any], extra: frozenset[str]) -> None:
    for key in spec:
        if key not in COMMON_FIELDS | extra:
            raise ValueError(f"{key}: unknown field for a {spec.get('kind')} output")


def get_str(spec: dict[str, Any], key: str, *, required: bool = False, max_len: int = 256) -> str | None:
    value = spec.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key}: is required")
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: must be a non-empty string")
    if len(value) > max_len:
        raise ValueError(f"{key}: longer than {max_len} characters")
    return value


def get_severity(spec: dict[str, Any]) -> int:
    value = spec.get("min_severity", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ValueError("min_severity: must be an integer from 0 to 10")
    return value


def get_timeout(spec: dict[str, Any]) -> float:
    value = spec.get("timeout_s", 10.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 60:
        raise ValueError("timeout_s: must be a number from 0.1 to 60")
    return float(value)


def get_url(spec: dict[str, Any], *, allow_private: bool, default: str | None = None) -> str:
    url = spec.get("url", default)
    if url is None:
        raise ValueError("url: is required")
    try:
        return check_url(url, allow_private=allow_private)
    except SSRFError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith("url:") else f"url: {message}") from None


def get_headers(spec: dict[str, Any]) -> dict[str, str]:
    value = spec.get("headers") or {}
    if not isinstance(value, dict):
        raise ValueError("headers: must be an object of name -> value")
    if len(value) > MAX_HEADERS:
        raise ValueError(f"headers: at most {MAX_HEADERS} headers")
    out: dict[str, str] = {}
    for name, val in value.items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise ValueError("headers: names must be 1-64 letters, digits or '-'")
        if name.lower() in RESERVED_HEADERS or name.lower().startswith(("x-agentwatch-", "content-")):
            raise ValueError(f"headers.{name}: is reserved")
        if not isinstance(val, str) or len(val) > MAX_HEADER_VALUE or not all(" " <= c <= "~" for c in val):
            # httpx sends header values as ASCII: anything else would fail every delivery
            raise ValueError(
                f"headers.{name}: must be a string of printable ASCII, at most {MAX_HEADER_VALUE} characters"
            )
        out[name] = val
    return out


@dataclass
class HttpOutput:
    """An output that POSTs JSON to one URL; subclasses build the body."""

    kind: str
    url: str
    name: str
    min_severity: int = 0
    timeout_s: float = 10.0
    allow_private: bool = False
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def describe(self) -> dict[str, Any]:
        """The spec without secrets, for settings pages and test results."""
        return {"kind": self.kind, "name": self.name, "min_severity": self.min_severity}

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body``, again after a transient failure (at most MAX_ATTEMPTS in all).

        Every attempt sends the same bytes and headers, so a signature stays valid; a receiver
        that got a message but failed to answer may see it twice (delivery is at least once)."""
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        all_headers = {**self.headers, "Content-Type": "application/json", **(headers or {})}
        attempt = 1
        while True:
            try:
                response = await self._post_once(payload, all_headers)
            except _Transient as exc:
                if attempt == MAX_ATTEMPTS:
                    raise NotifyError(f"{exc} ({attempt} attempts)") from None
                wait = BACKOFF_S[attempt - 1]
            else:
                wait = None if attempt == MAX_ATTEMPTS else retry_wait(response, attempt)
                if wait is None:
                    return self._accepted(response, attempt)
            await asyncio.sleep(wait)
            attempt += 1

    async def _post_once(self, payload: bytes, headers: dict[str, str]) -> httpx.Response:
        sending = _SENDING.set(True)
        try:
            async with guarded_client(allow_private=self.allow_private, timeout=self.timeout_s) as client:
                return await client.post(self.url, content=payload, headers=headers)
        except httpx.TimeoutException:
            raise NotifyError(f"{self.kind} {self.name}: timed out") from None
        except httpx.HTTPError as exc:
            refusal = ssrf_refusal(exc)
            if isinstance(refusal, UnresolvedHost):  # DNS may answer on the next attempt
                raise _Transient(f"{self.kind} {self.name}: cannot connect ({refusal})") from None
            if refusal is not None:  # the address it resolves to now is refused: final, and said so
                reason = str(refusal).removeprefix("url: ")
                raise NotifyError(
                    f"{self.kind} {self.name}: refused by the SSRF guard at delivery ({reason})"
                ) from None
            message = f"{self.kind} {self.name}: cannot connect ({type(exc).__name__})"
            if isinstance(exc, RETRY_ERRORS):
                raise _Transient(message) from None
            raise NotifyError(message) from None
        finally:
            _SENDING.reset(sending)

    def _accepted(self, response: httpx.Response, attempt: int) -> httpx.Response:
        """``response`` when it is a success; otherwise the NotifyError naming the answer."""
        status = response.status_code
        where = f"{self.kind} {self.name}: receiver answered {status}"
        if 300 <= status < 400:
            raise NotifyError(f"{where} (redirects are not followed)")
        if status >= 400:
            asked = retry_after_s(response.headers)
            if status in RETRY_STATUSES and asked is not None and asked > MAX_RETRY_AFTER_S:
                raise NotifyError(
                    f"{where} with a Retry-After of {asked:g} s (an output waits at most {MAX_RETRY_AFTER_S:g} s)"
                )
            raise NotifyError(where + (f" ({attempt} attempts)" if attempt > 1 else ""))
        return response


class _Transient(Exception):
    """A connection failed or was reset before an answer: worth another attempt."""


def ssrf_refusal(exc: BaseException) -> SSRFError | None:
    """The SSRF guard's refusal behind the failed connection ``exc``, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SSRFError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def retry_wait(response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before sending again after ``response``, or None when it is final."""
    if response.status_code not in RETRY_STATUSES:
        return None
    asked = retry_after_s(response.headers)
    if asked is None:
        return BACKOFF_S[attempt - 1]
    return asked if asked <= MAX_RETRY_AFTER_S else None


def common(spec: dict[str, Any], kind: str, *, allow_private: bool, default_url: str | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "url": get_url(spec, allow_private=allow_private, default=default_url),
        "name": get_str(spec, "name", max_len=MAX_NAME) or kind,
        "min_severity": get_severity(spec),
        "timeout_s": get_timeout(spec),
        "allow_private": allow_private,
    }
