"""Counting the messages of an OTLP protobuf request before it is parsed.

The protobuf parser builds every message of a request at once, and an empty message is two
bytes on the wire but 50 to 200 bytes parsed: 10 MiB of empty spans, resources or attributes
grew the server by 300 to 900 MiB before any check could run. So a large request is walked
first, on the wire: only the fields that hold OTLP messages are followed (everything else is
skipped by its length), and past ``MAX_MESSAGES`` it is refused. A request below
``SCAN_FROM_BYTES`` cannot hold enough to matter and is not walked. Anything the walk cannot
read is left to the parser, which names the problem.
"""

from __future__ import annotations

from agentwatch.events.codecs.framing import BodyError

MAX_MESSAGES = 500_000
SCAN_FROM_BYTES = 1024 * 1024
MAX_DEPTH = 200  # entries on the walk's stack; the protobuf parser stops at 100 levels

# message type -> {field number: message type of that field} (opentelemetry-proto v1)
CHILDREN: dict[str, dict[int, str]] = {
    "ExportTraceServiceRequest": {1: "ResourceSpans"},
    "ExportLogsServiceRequest": {1: "ResourceLogs"},
    "ResourceSpans": {1: "Resource", 2: "ScopeSpans"},
    "ResourceLogs": {1: "Resource", 2: "ScopeLogs"},
    "Resource": {1: "KeyValue"},
    "ScopeSpans": {1: "Scope", 2: "Span"},
    "ScopeLogs": {1: "Scope", 2: "LogRecord"},
    "Scope": {3: "KeyValue"},
    "Span": {9: "KeyValue", 11: "SpanEvent", 13: "Link", 15: "Status"},
    "SpanEvent": {3: "KeyValue"},
    "Link": {4: "KeyValue"},
    "Status": {},
    "LogRecord": {5: "AnyValue", 6: "KeyValue"},
    "KeyValue": {2: "AnyValue"},
    "AnyValue": {5: "ArrayValue", 6: "KeyValueList"},
    "ArrayValue": {1: "AnyValue"},
    "KeyValueList": {1: "KeyValue"},
}


class _Unreadable(Exception):
    """The bytes are not protobuf this walk follows: the parser will say why."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise _Unreadable


def check_message_count(body: bytes, root: str, limit: int = MAX_MESSAGES) -> None:
    """Refuse (413) a request of type ``root`` holding more than ``limit`` messages."""
    if len(body) < SCAN_FROM_BYTES:
        return
    count = 0
    todo = [(root, 0, len(body))]  # depth first: one entry per level of nesting
    try:
        while todo:
            kind, pos, end = todo.pop()
            children = CHILDREN[kind]
            while pos < end:
                key, pos = _varint(body, pos, end)
                wire = key & 7
                if wire == 0:
                    _, pos = _varint(body, pos, end)
                elif wire == 1:
                    pos += 8
                elif wire == 5:
                    pos += 4
                elif wire == 2:
                    size, pos = _varint(body, pos, end)
                    child = children.get(key >> 3)
                    if child is None:
                        pos += size
                        continue
                    count += 1
                    if count > limit:
                        rule = f"more than {limit} protobuf messages in one request (spans, attributes...)"
                        raise BodyError("body", rule, 413)
                    if len(todo) >= MAX_DEPTH:
                        raise _Unreadable  # deeper than the parser goes: it refuses the request
                    todo.append((kind, pos + size, end))  # the rest of this message, after the child
                    todo.append((child, pos, min(pos + size, end)))
                    break
                else:  # groups: not in OTLP
                    raise _Unreadable
    except _Unreadable:
        return
