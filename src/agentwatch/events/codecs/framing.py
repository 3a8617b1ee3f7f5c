"""Splitting a request body into JSON items: one object, a JSON array, or NDJSON."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import orjson


class BodyError(ValueError):
    """The body as a whole cannot be read (bad gzip, too large, not JSON at all)."""

    def __init__(self, field: str, rule: str, status: int = 400) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.status = status


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing to grow past ``limit`` bytes (zip-bomb safe)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError("body", f"invalid gzip data ({exc})") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BodyError("body", f"larger than {limit} bytes after gzip decoding", status=413)
    if not d.eof:
        raise BodyError("body", "truncated gzip data")
    return out


def maybe_gunzip(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    if (content_encoding or "").lower().strip() == "gzip" or body[:2] == b"\x1f\x8b":
        return gunzip(body, limit)
    return body


def split_items(body: bytes, *, max_items: int) -> Iterator[tuple[int, Any, bytes | None, str | None]]:
    """Yield ``(index, value, raw_line, error)`` for each item in the body.

    A body starting with ``[`` is one JSON array; otherwise, when the body parses
    as a single JSON value it is one item; otherwise it is NDJSON, one value per
    non-blank line, with lines starting with ``#`` or ``//`` skipped.
    """
    stripped = body.lstrip()
    if not stripped:
        raise BodyError("body", "is empty")
    if stripped[:1] == b"[":
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise BodyError("body", f"malformed JSON array ({exc})") from None
        if len(items) > max_items:
            raise BodyError("body", f"more than {max_items} events in one request", status=413)
        for i, item in enumerate(items):
            yield i, item, None, None
        return
    try:
        single = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        single = None
    else:
        yield 0, single, stripped.rstrip(), None
        return
    index = 0
    for line in stripped.split(b"\n"):
        line = line.strip()
        if not line or line.startswith((b"#", b"//")):
            continue
        if index >= max_items:
            raise BodyError("body", f"more than {max_items} events in one request", status=413)
        try:
            yield index, orjson.loads(line), line, None
        except orjson.JSONDecodeError as exc:
            yield index, None, line, f"malformed JSON ({exc})"
        index += 1
