"""Splitting captured stream bytes into SSE events or NDJSON values.

The stream is cut at blank lines in one pass over the bytes; an event that is a single
``data:`` line (what LLM providers send) is taken as is, anything else is read line by
line. Data stays bytes until it is parsed, so JSON is decoded once, by orjson.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


def _events(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``(event name, data bytes)`` of each SSE event; multi-line data is joined by newlines."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for block in data.split(b"\n\n"):
        if not block:
            continue
        if block[:5] == b"data:" and b"\n" not in block:  # one data line, no event name
            value = block[5:]
            yield "", value[1:] if value[:1] == b" " else value
            continue
        event = ""
        lines: list[bytes] = []
        for line in block.split(b"\n"):
            if not line:  # a blank line left over from a run of three or more newlines
                if lines:
                    yield event, b"\n".join(lines)
                event, lines = "", []
                continue
            if line[:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                lines.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
        if lines:
            yield event, b"\n".join(lines)


def iter_sse(data: bytes) -> Iterator[tuple[str, str]]:
    """Yield ``(event name, data text)`` for each SSE event; multi-line data is joined by newlines."""
    for event, value in _events(data):
        yield event, value.decode("utf-8", "replace")


def iter_sse_json(data: bytes) -> Iterator[tuple[str, Any]]:
    """SSE events whose data is JSON (``[DONE]`` and malformed data are skipped)."""
    for event, value in _events(data):
        if value == b"[DONE]":
            continue
        try:
            yield event, orjson.loads(value)
        except orjson.JSONDecodeError:
            try:  # invalid UTF-8 inside otherwise valid JSON: read it with replacement characters
                yield event, orjson.loads(value.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                continue


def iter_ndjson(data: bytes) -> Iterator[Any]:
    for line in data.split(b"\n"):
        line = line.strip()
        if not line:
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            continue


def is_sse(content_type: str, data: bytes) -> bool:
    return "text/event-stream" in content_type or data.lstrip().startswith((b"data:", b"event:"))
