"""Calls to the identity provider: through the SSRF guard, with a timeout and a size bound,
answers read as JSON objects. Every failure is an :class:`IdpError` naming the setting."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from agentwatch.api.errors import ApiError
from agentwatch.net.bounded_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_bounded
from agentwatch.net.ssrf import SSRFError, check_url, guarded_client
from agentwatch.notify.base import ssrf_refusal


class IdpError(ApiError):
    """The identity provider could not be used (answered 502 to the caller)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, code="BAD_GATEWAY")


async def call_json(
    method: str,
    url: str,
    what: str,
    *,
    allow_private: bool,
    timeout_s: float,
    max_bytes: int,
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """``method url`` answered with a JSON object; ``what`` names the setting or field in errors."""
    try:
        check_url(url, allow_private=allow_private, resolve=False)
    except SSRFError as exc:
        raise IdpError(f"{what}: refused by the SSRF guard ({str(exc).removeprefix('url: ')})") from None
    headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
    try:
        async with guarded_client(allow_private=allow_private, timeout=timeout_s) as client:
            request = client.build_request(method, url, data=data, headers=headers)
            response = await client.send(request, stream=True, auth=auth)
            try:
                if response.status_code != 200:
                    raise IdpError(f"{what}: the identity provider answered {response.status_code}")
                body = await read_bounded(response, max_bytes)
            finally:
                await response.aclose()
    except httpx.TimeoutException:
        raise IdpError(f"{what}: the identity provider did not answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        refusal = ssrf_refusal(exc)
        if refusal is not None:
            reason = str(refusal).removeprefix("url: ")
            raise IdpError(f"{what}: refused by the SSRF guard ({reason})") from None
        raise IdpError(f"{what}: cannot reach the identity provider ({type(exc).__name__})") from None
    except BodyTooLarge:
        raise IdpError(f"{what}: the answer is larger than {max_bytes} bytes") from None
    except BadEncoding as exc:
        raise IdpError(f"{what}: {exc}") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise IdpError(f"{what}: the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise IdpError(f"{what}: the answer is not a JSON object")
    return doc
