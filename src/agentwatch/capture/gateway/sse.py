"""Splitting captured stream bytes into SSE events or NDJSON values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


def iter_sse(data: bytes) -> Iterator[tuple[str, str]]:
    """Yield ``(event name, data text)`` for each SSE event; multi-line data is joined by newlines."""
    event = ""
    lines: list[str] = []
    for raw in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not line:
            if lines:
                yield event, "\n".join(lines)
            event, lines = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            lines.append(value)
        elif name == "event":
            event = value
    if lines:
        yield event, "\n".join(lines)


def iter_sse_json(data: bytes) -> Iterator[tuple[str, Any]]:
    """SSE events whose data is JSON (``[DONE]`` and malformed data are skipped)."""
    for event, text in iter_sse(data):
        if text == "[DONE]":
            continue
        try:
            yield event, orjson.loads(text)
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
