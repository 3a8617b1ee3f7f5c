"""Reading request bodies under a size limit, without trusting Content-Length."""

from __future__ import annotations

from fastapi import Request

from agentwatch.api.errors import ApiError, InvalidRequest, TooLarge
from agentwatch.events.codecs.framing import BodyError, maybe_gunzip


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge(f"body: larger than {limit} bytes")
        except ValueError:
            raise InvalidRequest("header content-length: must be an integer") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body: larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_events_body(request: Request, limit: int) -> bytes:
    """The body, gunzipped when sent with ``Content-Encoding: gzip``, never above ``limit``."""
    body = await read_limited(request, limit)
    try:
        return maybe_gunzip(body, request.headers.get("content-encoding"), limit)
    except BodyError as exc:
        if exc.status == 413:
            raise TooLarge(str(exc)) from None
        if exc.status == 415:
            raise ApiError(str(exc), status=415) from None
        raise InvalidRequest(str(exc)) from None
