"""Reading an outbound HTTP answer with a bound on its size once decoded.

httpx decodes a compressed answer one received chunk at a time, so a size check on
``aiter_bytes`` comes after the memory is spent: one 64 KiB chunk of gzip can hold 64 MB of
text. Here the raw bytes are inflated with zlib, never asked for more output than the bytes
still allowed, so a compressed bomb costs at most ``max_bytes`` (plus one chunk) of memory.

Callers send :data:`ACCEPT_ENCODING`, so an answer should come as identity, gzip or deflate;
any other coding, or more than one stacked, is refused rather than read undecoded.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import httpx

ACCEPT_ENCODING = "gzip, deflate"
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS


class BodyTooLarge(Exception):
    """The answer holds more than the bytes allowed (decoded)."""


class BadEncoding(ValueError):
    """The answer's content coding is unknown, stacked, or its data does not inflate."""


class _Decoder(Protocol):
    def decode(self, data: bytes, room: int) -> bytes: ...

    def finish(self) -> None: ...


class _Identity:
    def decode(self, data: bytes, room: int) -> bytes:
        return data

    def finish(self) -> None:
        return None


class _Inflate:
    """gzip (members one after another, as RFC 1952 allows) or deflate (zlib-wrapped, or raw as
    some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self.started = False
        self.z = zlib.decompressobj(_GZIP if gzip else _ZLIB)

    def decode(self, data: bytes, room: int) -> bytes:
        out: list[bytes] = []
        while data:
            if self.gzip and self.z.eof:  # the next member
                self.z = zlib.decompressobj(_GZIP)
            try:
                piece = self.z.decompress(data, room + 1)
            except zlib.error:
                if self.gzip or self.started:
                    raise BadEncoding("the answer's compressed data is corrupt") from None
                self.z = zlib.decompressobj(_RAW_DEFLATE)  # a deflate answer without its zlib header
                self.started = True
                continue
            self.started = True
            out.append(piece)
            room -= len(piece)
            if room < 0:
                break  # over the bound: the caller refuses the answer
            # all of ``data`` was taken, unless a gzip member ended inside it
            data = self.z.unused_data if self.gzip and self.z.eof else b""
        return b"".join(out)

    def finish(self) -> None:
        if not self.z.eof:
            raise BadEncoding("the answer's compressed data ends early")


def _decoder(content_encoding: str) -> _Decoder:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) > 1:
        raise BadEncoding(f"the answer's content codings are stacked ({', '.join(codings)})")
    if codings[0] in ("gzip", "x-gzip"):
        return _Inflate(gzip=True)
    if codings[0] == "deflate":
        return _Inflate(gzip=False)
    raise BadEncoding(f"the answer's content coding {codings[0][:32]!r} is not one of {ACCEPT_ENCODING}")


async def read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    """The answer's decoded body; :class:`BodyTooLarge` past ``max_bytes``, :class:`BadEncoding`
    for a coding that cannot be read."""
    decoder = _decoder(response.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():
        piece = decoder.decode(raw, max_bytes - size)
        size += len(piece)
        if size > max_bytes:
            raise BodyTooLarge(f"larger than {max_bytes} bytes")
        chunks.append(piece)
    decoder.finish()
    return b"".join(chunks)
