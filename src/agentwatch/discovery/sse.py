"""A small incremental Server-Sent Events parser (for MCP replies and the legacy SSE transport)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None = None


class SseParser:
    """Feed bytes, get complete events; tolerant of CRLF, comments and split chunks."""

    def __init__(self) -> None:
        self._buf = ""
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buf += chunk.decode("utf-8", "replace")
        out: list[SseEvent] = []
        while True:
            idx = min((i for i in (self._buf.find("\n"), self._buf.find("\r")) if i >= 0), default=-1)
            if idx < 0:
                return out
            line = self._buf[:idx]
            skip = 2 if self._buf[idx : idx + 2] == "\r\n" else 1
            self._buf = self._buf[idx + skip :]
            if line == "":
                if self._data:
                    out.append(SseEvent(self._event, "\n".join(self._data), self._id))
                self._event, self._data = "message", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value or "message"
            elif name == "data":
                self._data.append(value)
            elif name == "id":
                self._id = value


def parse_all(body: bytes) -> list[SseEvent]:
    parser = SseParser()
    events = parser.feed(body)
    events.extend(parser.feed(b"\n\n"))
    return events
