"""The frames the processes of one server exchange over the relay's Unix socket.

A frame is a 4-byte big-endian length, one byte of kind and the payload (the length
counts the kind byte and the payload). Kinds:

- ``S`` (process -> relay): how many live clients the process has now, as ASCII digits;
- ``W`` (relay -> process): ``1`` when another process has live clients (so items
  published here are wanted there), ``0`` when none has;
- ``P`` (both ways): a published item, ``{"channel", "item"}`` as JSON (an event as
  :func:`agentwatch.events.transfer.as_dict`). The relay passes it on unread;
- ``R`` (process -> relay, every second): the events per second the process committed over
  the last 10 s, as ASCII;
- ``T`` (relay -> process, every second): the sum of the processes' last ``R``: the server's
  events per second.
"""

from __future__ import annotations

import asyncio
import struct

SUBSCRIBERS = b"S"
WANTED = b"W"
PUBLISHED = b"P"
RATE = b"R"
TOTAL_RATE = b"T"
KINDS = (SUBSCRIBERS, WANTED, PUBLISHED, RATE, TOTAL_RATE)
RATE_EVERY_S = 1.0
# An item is a committed event or an alert, both bounded far below this by the ingest limits;
# a longer frame is a broken peer, and its connection is closed.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# A peer that has not taken this much of what was sent to it loses the next items (counted),
# so one stalled process can never grow another's memory.
MAX_UNSENT_BYTES = 16 * 1024 * 1024
_HEAD = struct.Struct(">I")


class FrameError(ValueError):
    """The peer sent something that is not a frame."""


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) + 1) + kind + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(kind, payload) of the next frame; ``IncompleteReadError`` at the end of the stream."""
    (length,) = _HEAD.unpack(await reader.readexactly(_HEAD.size))
    if not 1 <= length <= MAX_FRAME_BYTES:
        raise FrameError(f"frame length {length} outside 1..{MAX_FRAME_BYTES}")
    data = await reader.readexactly(length)
    kind = data[:1]
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind!r}")
    return kind, data[1:]


def send(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Queue ``data`` unless the peer already has ``MAX_UNSENT_BYTES`` waiting; False if dropped."""
    if writer.is_closing() or writer.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
        return False
    writer.write(data)
    return True


def parse_rate(payload: bytes) -> float:
    """An ``R`` or ``T`` payload: a finite, non-negative number of events per second."""
    value = float(payload)  # ValueError for anything else
    if not 0.0 <= value < 1e12:
        raise FrameError(f"rate {payload[:40]!r} is not a finite, non-negative number")
    return value
