"""What every provider module implements, and the parsed forms they produce.

A provider turns a request body into a :class:`ParsedRequest` and the complete
response bytes (streamed or not) into a :class:`ParsedResponse`. Parsing runs after
the response has been relayed, on the captured bytes, so it never adds latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "error", "other"}
MESSAGE_ROLES = {"system", "user", "assistant", "tool", "function"}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what the store (orjson) and the OISP schema can hold
MAX_TEXT_DEPTH = 32  # nested content blocks followed by text_of


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: Any = None  # raw JSON text or an object, as the provider sent it
    type: str = "function"

    def arguments_object(self) -> dict[str, Any]:
        args = self.arguments
        if isinstance(args, str):
            try:
                args = orjson.loads(args) if args.strip() else {}
            except orjson.JSONDecodeError:
                return {"_raw": args}
        if isinstance(args, dict):
            return json_safe(args)
        return {} if args is None else {"_value": json_safe(args)}


@dataclass
class ToolResult:
    call_id: str | None
    name: str | None
    content: Any
    is_error: bool = False


@dataclass
class ParsedRequest:
    model: str | None = None
    streaming: bool = False
    request_type: str = "chat"
    messages: list[dict[str, Any]] = field(default_factory=list)  # {role, content: str, ...}
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tool_results: list[ToolResult] = field(default_factory=list)
    conversation_id: str | None = None
    is_llm_call: bool = True  # False for model listings and other non-inference calls


@dataclass
class ParsedResponse:
    provider_request_id: str | None = None
    model: str | None = None
    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    error: dict[str, str] | None = None
    complete: bool = True


def normalize_finish(reason: Any) -> str | None:
    if not isinstance(reason, str) or not reason:
        return None
    r = reason.lower()
    table = {
        "stop": "stop",
        "end_turn": "stop",
        "stop_sequence": "stop",
        "completed": "stop",
        "length": "length",
        "max_tokens": "length",
        "max_output_tokens": "length",
        "tool_calls": "tool_calls",
        "tool_call": "tool_calls",
        "tool_use": "tool_calls",
        "function_call": "tool_calls",
        "content_filter": "content_filter",
        "safety": "content_filter",
        "refusal": "content_filter",
        "recitation": "content_filter",
        "error": "error",
        "failed": "error",
    }
    return table.get(r, "other")


def text_of(content: Any, _depth: int = 0) -> str:
    """Plain text of a message content in any provider's shape (string, parts, blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        if _depth > MAX_TEXT_DEPTH:
            return ""
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                for key in ("text", "input_text", "output_text", "content"):
                    v = block.get(key)
                    if isinstance(v, str):
                        parts.append(v)
                        break
                    if key == "content" and isinstance(v, list):
                        parts.append(text_of(v, _depth + 1))
                        break
        return "\n".join(p for p in parts if p)
    if isinstance(content, dict):
        return text_of([content], _depth + 1)
    if isinstance(content, bool | int | float):
        return str(content)
    return ""


def has_images(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for block in content:
        if isinstance(block, dict) and (
            block.get("type") in ("image", "image_url", "input_image")
            or "inline_data" in block
            or "inlineData" in block
        ):
            return True
    return False


def as_str(v: Any) -> str | None:
    """``v`` when it is a string, else None (a field of the wrong type is ignored)."""
    return v if isinstance(v, str) else None


def as_dict(v: Any) -> dict[str, Any]:
    """``v`` when it is an object, else an empty one."""
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    """``v`` when it is an array, else an empty one."""
    return v if isinstance(v, list) else []


def role_of(v: Any) -> str | None:
    """A message role as sent (``developer`` is the system role), or None when it is not a string."""
    if not isinstance(v, str):
        return None
    return "system" if v == "developer" else v


def number(v: Any) -> int | float | None:
    """A JSON number the store can hold: not a bool, finite, an integer within the signed 64-bit range."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if INT64_MIN <= v <= INT64_MAX else None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return None


def integer(v: Any) -> int | None:
    n = number(v)
    return n if isinstance(n, int) else None


def int_or_none(v: Any) -> int | None:
    """A count (tokens): a non-negative integer within the signed 64-bit range, else None (left out)."""
    n = integer(v)
    return n if n is not None and n >= 0 else None


def set_usage(usage: dict[str, int], key: str, value: Any) -> None:
    v = int_or_none(value)
    if v is not None:
        usage[key] = v


def set_total(usage: dict[str, int]) -> None:
    """``total_tokens`` as prompt + completion, left out when the sum leaves the signed 64-bit range."""
    if "prompt_tokens" in usage and "completion_tokens" in usage:
        usage.pop("total_tokens", None)
        set_usage(usage, "total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])


def pick_params(
    src: Any, numbers: tuple[str, ...] = (), integers: tuple[str, ...] = (), strings: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The model parameters of ``src`` of the expected type (``integers`` must be whole numbers).

    A parameter of another type, or a number the store cannot hold (an integer beyond the signed
    64-bit range), is left out.
    """
    out: dict[str, Any] = {}
    if not isinstance(src, dict):
        return out
    for k in numbers:
        n = number(src.get(k))
        if n is not None:
            out[k] = n
    for k in integers:
        i = integer(src.get(k))
        if i is not None:
            out[k] = i
    for k in strings:
        v = src.get(k)
        if isinstance(v, str):
            out[k] = v[:256]
    return out


def json_text(v: Any) -> str:
    """``v`` as JSON text; "" for what orjson cannot write (nested deeper than it goes)."""
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        return ""


def index_key(v: Any) -> tuple[int, int, str]:
    """Sort key of a stream slot's ``index``: integers in their order, then anything else by its JSON text."""
    i = integer(v)
    if i is not None:
        return (0, i, "")
    return (1, 0, json_text(v))  # "" (one slot for all) when nested deeper than orjson writes


def json_safe(value: Any) -> Any:
    """``value`` (decoded JSON, changed in place) with what the store cannot serialise made safe.

    An integer beyond the signed 64-bit range becomes its decimal string, a non-finite float
    None. Used on opaque payloads recorded as sent (tool arguments).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        n = number(value)
        return n if n is not None else (str(value) if isinstance(value, int) else None)
    stack = [value]
    while stack:
        node = stack.pop()
        keys = list(node.keys()) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else ()
        for k in keys:
            v = node[k]
            if isinstance(v, dict | list):
                stack.append(v)
            elif isinstance(v, int | float) and not isinstance(v, bool) and number(v) is None:
                node[k] = str(v) if isinstance(v, int) else None
    return value


def json_error(message: str, status: int) -> dict[str, str]:
    return {"type": f"http_{status}", "message": message[:1000]}


class Provider:
    """Base class: ``name`` is the OISP provider name recorded in events."""

    kind = "generic"
    key_headers: tuple[str, ...] = ("authorization",)
    key_query: tuple[str, ...] = ()

    def __init__(self, name: str) -> None:
        self.name = name

    def parse_request(self, path: str, body: Any) -> ParsedRequest:
        raise NotImplementedError

    def parse_response(self, path: str, req: ParsedRequest, body: bytes, content_type: str) -> ParsedResponse:
        raise NotImplementedError

    def error(self, status: int, message: str, code: str) -> dict[str, Any]:
        """An error body the provider's SDKs understand (used when the guard blocks)."""
        raise NotImplementedError

    def api_key(self, headers: Any, query: Any) -> str | None:
        for h in self.key_headers:
            v = headers.get(h)
            if v:
                return v.removeprefix("Bearer ").removeprefix("bearer ").strip()
        for q in self.key_query:
            v = query.get(q)
            if v:
                return v
        return None

    def request_model(self, path: str, body: Any) -> str | None:
        return body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
