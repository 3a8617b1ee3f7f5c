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


MAX_GZIP_MEMBERS = 1000
UTF8_BOM = b"\xef\xbb\xbf"


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing to grow past ``limit`` bytes (zip-bomb safe).

    A gzip stream may hold several members one after the other (RFC 1952); they are
    inflated in turn and joined. Anything after the last member that is not gzip is an error.
    """
    parts: list[bytes] = []
    size = 0
    rest = body
    for _ in range(MAX_GZIP_MEMBERS):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            where = "invalid gzip data" if not parts else "data after the end of the gzip stream"
            raise BodyError("body", f"{where} ({exc})") from None
        size += len(out)
        if size > limit or d.unconsumed_tail:
            raise BodyError("body", f"larger than {limit} bytes after gzip decoding", status=413)
        if not d.eof:
            raise BodyError("body", "truncated gzip data")
        parts.append(out)
        rest = d.unused_data
        if not rest:
            return b"".join(parts)
    raise BodyError("body", f"more than {MAX_GZIP_MEMBERS} gzip members")


# Parsed JSON takes 20 to 50 times the bytes it was sent in when it is made of tiny objects
# and arrays ({} is 2 bytes and a 64-byte dict): a 10 MiB body of them grew the server by
# 300 MiB. Each object and array opens with one of these two bytes, so their count bounds the
# containers parsing makes (brackets inside strings count too: a bound, not a count). Scalars
# are not counted: a long array of numbers (a series, an embedding) parses to about its size.
MAX_JSON_CONTAINERS = 1_000_000


def check_json_values(body: bytes, limit: int = MAX_JSON_CONTAINERS) -> None:
    """Refuse (413) a JSON body that would parse into more than ``limit`` objects and arrays,
    before parsing it."""
    if len(body) > limit and body.count(b"{") + body.count(b"[") > limit:
        raise BodyError("body", f"more than {limit} JSON objects and arrays in one request", 413)


GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
PLAIN_ENCODINGS = frozenset({"", "identity"})


def maybe_gunzip(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    encoding = (content_encoding or "").lower().strip()
    if encoding in GZIP_ENCODINGS or body[:2] == b"\x1f\x8b":
        return gunzip(body, limit)
    if encoding not in PLAIN_ENCODINGS:  # deflate, br, ...: the bytes would only read as garbage
        raise BodyError("header content-encoding", f"{encoding[:32]!r} is not supported (gzip or identity)", 415)
    return body


def split_items(body: bytes, *, max_items: int) -> Iterator[tuple[int, Any, bytes | None, str | None]]:
    """Yield ``(index, value, raw_line, error)`` for each item in the body.

    A body starting with ``[`` is one JSON array; otherwise, when the body parses
    as a single JSON value it is one item; otherwise it is NDJSON, one value per
    non-blank line, with lines starting with ``#`` or ``//`` skipped.
    """
    stripped = body.removeprefix(UTF8_BOM).lstrip()  # JSON parsers may ignore a BOM (RFC 8259, 8.1)
    if not stripped:
        raise BodyError("body", "is empty")
    check_json_values(stripped)
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
    # One value, or NDJSON? A first line that is a whole value answers without parsing the whole
    # body: with more after it, the body cannot be one value (a failed parse of a 1 MiB NDJSON
    # body cost about 5 us per event, most of decoding's own time). A first line that is not a
    # whole value (a pretty-printed object, a comment) leaves the question to the whole body.
    first, _, rest = stripped.partition(b"\n")
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError:
        try:
            single = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            yield 0, single, stripped.rstrip(), None
            return
    else:
        if not rest.strip():
            yield 0, head, stripped.rstrip(), None
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
