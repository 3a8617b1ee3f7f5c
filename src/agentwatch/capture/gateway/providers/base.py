"""What every provider module implements, and the parsed forms they produce.

A provider turns a request body into a :class:`ParsedRequest` and the complete
response bytes (streamed or not) into a :class:`ParsedResponse`. Parsing runs after
the response has been relayed, on the captured bytes, so it never adds latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "error", "other"}
MESSAGE_ROLES = {"system", "user", "assistant", "tool", "function"}


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
            return args
        return {} if args is None else {"_value": args}


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


def text_of(content: Any) -> str:
    """Plain text of a message content in any provider's shape (string, parts, blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
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
                        parts.append(text_of(v))
                        break
        return "\n".join(p for p in parts if p)
    if isinstance(content, dict):
        return text_of([content])
    return str(content)


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


def int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def set_usage(usage: dict[str, int], key: str, value: Any) -> None:
    v = int_or_none(value)
    if v is not None:
        usage[key] = v


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
