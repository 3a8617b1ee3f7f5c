"""Anthropic Messages API (``/v1/messages``), streamed or not.

Streams are rebuilt per content block: ``tool_use`` blocks get their input from the
``input_json_delta`` fragments, ``thinking`` blocks from ``thinking_delta``; usage comes from
``message_start`` (input) and the last ``message_delta`` (output).
"""

from __future__ import annotations

from typing import Any

import orjson

from agentwatch.capture.gateway.providers.base import (
    ParsedRequest,
    ParsedResponse,
    Provider,
    ToolCall,
    ToolResult,
    as_dict,
    as_list,
    as_str,
    has_images,
    index_key,
    normalize_finish,
    pick_params,
    set_total,
    set_usage,
    text_of,
)
from agentwatch.capture.gateway.sse import is_sse, iter_sse_json

NUMBER_PARAMS = ("temperature", "top_p", "top_k")
INTEGER_PARAMS = ("max_tokens",)


def _usage(u: Any, usage: dict[str, int]) -> None:
    if not isinstance(u, dict):
        return
    set_usage(usage, "prompt_tokens", u.get("input_tokens"))
    set_usage(usage, "completion_tokens", u.get("output_tokens"))
    set_usage(usage, "cached_tokens", u.get("cache_read_input_tokens"))
    set_total(usage)


class AnthropicProvider(Provider):
    kind = "anthropic"
    key_headers = ("x-api-key", "authorization")

    def parse_request(self, path: str, body: Any) -> ParsedRequest:
        req = ParsedRequest()
        if not isinstance(body, dict) or not path.rstrip("/").endswith("/messages"):
            req.is_llm_call = False
            if path.endswith("/count_tokens") and isinstance(body, dict):
                req.model = body.get("model") if isinstance(body.get("model"), str) else None
            return req
        req.model = body.get("model") if isinstance(body.get("model"), str) else None
        req.streaming = body.get("stream") is True
        req.parameters = pick_params(body, NUMBER_PARAMS, INTEGER_PARAMS)
        if isinstance(body.get("thinking"), dict):
            req.parameters["thinking"] = (as_str(body["thinking"].get("type")) or "enabled")[:64]
        for t in as_list(body.get("tools")):
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                entry = {"name": t["name"], "type": as_str(t.get("type")) or "custom"}
                if isinstance(t.get("description"), str):
                    entry["description"] = t["description"][:1000]
                req.tools.append(entry)
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            kind = as_str(choice.get("type"))
            if kind is not None:
                req.tool_choice = {"tool": "specific", "any": "required"}.get(kind, kind[:64])
        system = body.get("system")
        if system:
            req.messages.append({"role": "system", "content": text_of(system)})
        for m in as_list(body.get("messages")):
            if not isinstance(m, dict):
                continue
            role = "assistant" if m.get("role") == "assistant" else "user"
            content = m.get("content")
            blocks = content if isinstance(content, list) else []
            results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
            for b in results:
                text = text_of(b.get("content"))
                call_id = as_str(b.get("tool_use_id"))
                req.tool_results.append(ToolResult(call_id, None, text, is_error=b.get("is_error") is True))
                req.messages.append({"role": "tool", "content": text, "tool_call_id": call_id or ""})
            others = [b for b in blocks if not (isinstance(b, dict) and b.get("type") == "tool_result")]
            if isinstance(content, str) or others:
                msg: dict[str, Any] = {
                    "role": role,
                    "content": text_of(content if isinstance(content, str) else others),
                }
                if has_images(others):
                    msg["has_images"] = True
                req.messages.append(msg)
        return req

    def parse_response(self, path: str, req: ParsedRequest, body: bytes, content_type: str) -> ParsedResponse:
        if is_sse(content_type, body):
            return self._stream(body)
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return ParsedResponse(complete=False)
        if not isinstance(doc, dict):
            return ParsedResponse(complete=False)
        if doc.get("type") == "error" or isinstance(doc.get("error"), dict):
            err = as_dict(doc.get("error"))
            return ParsedResponse(
                error={"type": str(err.get("type", "error")), "message": str(err.get("message", ""))[:1000]},
                finish_reason="error",
            )
        out = ParsedResponse(provider_request_id=as_str(doc.get("id")), model=as_str(doc.get("model")))
        _usage(doc.get("usage"), out.usage)
        for block in as_list(doc.get("content")):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                out.text += as_str(block.get("text")) or ""
            elif kind == "thinking":
                out.thinking += as_str(block.get("thinking")) or ""
            elif kind in ("tool_use", "server_tool_use"):
                out.tool_calls.append(
                    ToolCall(as_str(block.get("id")) or "", as_str(block.get("name")) or "", block.get("input"))
                )
        out.finish_reason = normalize_finish(doc.get("stop_reason"))
        return out

    def _stream(self, body: bytes) -> ParsedResponse:
        out = ParsedResponse(complete=False)
        blocks: dict[tuple[int, int, str], dict[str, Any]] = {}
        for event, doc in iter_sse_json(body):
            if not isinstance(doc, dict):
                continue
            kind = doc.get("type") or event
            if kind == "message_start" and isinstance(doc.get("message"), dict):
                msg = doc["message"]
                out.provider_request_id = as_str(msg.get("id"))
                out.model = as_str(msg.get("model"))
                _usage(msg.get("usage"), out.usage)
            elif kind == "content_block_start" and isinstance(doc.get("content_block"), dict):
                cb = doc["content_block"]
                blocks[index_key(doc.get("index", len(blocks)))] = {
                    "type": as_str(cb.get("type")),
                    "id": as_str(cb.get("id")) or "",
                    "name": as_str(cb.get("name")) or "",
                    "parts": [as_str(cb.get("text")) or as_str(cb.get("thinking")) or ""],
                }
            elif kind == "content_block_delta" and isinstance(doc.get("delta"), dict):
                slot = blocks.get(index_key(doc.get("index", -1)))
                if slot is None:
                    continue
                d = doc["delta"]
                for key in ("text", "partial_json", "thinking"):
                    if isinstance(d.get(key), str):
                        slot["parts"].append(d[key])
            elif kind == "message_delta":
                delta = doc.get("delta") or {}
                if isinstance(delta, dict) and delta.get("stop_reason"):
                    out.finish_reason = normalize_finish(delta["stop_reason"])
                u = doc.get("usage")
                if isinstance(u, dict):
                    merged = {"input_tokens": out.usage.get("prompt_tokens"), **u}
                    if u.get("input_tokens") is None:
                        merged["input_tokens"] = out.usage.get("prompt_tokens")
                    _usage(merged, out.usage)
            elif kind == "message_stop":
                out.complete = True
            elif kind == "error" and isinstance(doc.get("error"), dict):
                out.error = {
                    "type": str(doc["error"].get("type", "error")),
                    "message": str(doc["error"].get("message", ""))[:1000],
                }
                out.finish_reason = "error"
        for _, b in sorted(blocks.items()):
            joined = "".join(b["parts"])
            if b["type"] == "text":
                out.text += joined
            elif b["type"] == "thinking":
                out.thinking += joined
            elif b["type"] in ("tool_use", "server_tool_use"):
                out.tool_calls.append(ToolCall(str(b["id"]), str(b["name"]), joined or "{}"))
        return out

    def error(self, status: int, message: str, code: str) -> dict[str, Any]:
        kind = "permission_error" if status == 403 else "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
