"""Ollama's native API (``/api/chat``, ``/api/generate``; NDJSON streams, streaming by default).

Its OpenAI-compatible ``/v1/...`` endpoints are parsed by the OpenAI provider.
"""

from __future__ import annotations

from typing import Any

from agentwatch.capture.gateway.providers.base import (
    MESSAGE_ROLES,
    ParsedRequest,
    ParsedResponse,
    Provider,
    ToolCall,
    ToolResult,
    as_list,
    as_str,
    normalize_finish,
    pick_params,
    set_total,
    set_usage,
    text_of,
)
from agentwatch.capture.gateway.providers.openai import OpenAIProvider
from agentwatch.capture.gateway.sse import iter_ndjson

OPTIONS = ("temperature", "top_p", "top_k", "num_predict", "num_ctx", "seed")


class OllamaProvider(Provider):
    kind = "ollama"
    key_headers = ("authorization",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._openai = OpenAIProvider(name)

    def parse_request(self, path: str, body: Any) -> ParsedRequest:
        if path.startswith("/v1/"):
            return self._openai.parse_request(path, body)
        req = ParsedRequest()
        if not isinstance(body, dict) or path not in ("/api/chat", "/api/generate"):
            req.is_llm_call = False
            return req
        req.model = body.get("model") if isinstance(body.get("model"), str) else None
        req.streaming = body.get("stream", True) is not False
        req.parameters = pick_params(body.get("options"), OPTIONS)
        for t in as_list(body.get("tools")):
            fn = t.get("function") if isinstance(t, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                req.tools.append({"name": fn["name"], "type": "function"})
        if path == "/api/generate":
            req.request_type = "completion"
            if isinstance(body.get("system"), str):
                req.messages.append({"role": "system", "content": body["system"]})
            req.messages.append({"role": "user", "content": text_of(body.get("prompt"))})
            return req
        for m in as_list(body.get("messages")):
            if not isinstance(m, dict):
                continue
            role = as_str(m.get("role"))
            if role not in MESSAGE_ROLES:
                role = "user"
            msg: dict[str, Any] = {"role": role, "content": text_of(m.get("content"))}
            name = as_str(m.get("tool_name")) or as_str(m.get("name"))
            if name is not None:
                msg["name"] = name
            req.messages.append(msg)
            if role == "tool":
                req.tool_results.append(ToolResult(as_str(m.get("tool_call_id")), name, msg["content"]))
        return req

    def parse_response(self, path: str, req: ParsedRequest, body: bytes, content_type: str) -> ParsedResponse:
        if path.startswith("/v1/"):
            return self._openai.parse_response(path, req, body, content_type)
        out = ParsedResponse(complete=False)
        text: list[str] = []
        thinking: list[str] = []
        for doc in iter_ndjson(body):
            if not isinstance(doc, dict):
                continue
            if isinstance(doc.get("error"), str):
                out.error = {"type": "error", "message": doc["error"][:1000]}
                out.finish_reason = "error"
                continue
            out.model = out.model or as_str(doc.get("model"))
            msg = doc.get("message")
            if isinstance(msg, dict):
                text.append(text_of(msg.get("content")))
                if isinstance(msg.get("thinking"), str):
                    thinking.append(msg["thinking"])
                for tc in as_list(msg.get("tool_calls")):
                    fn = tc.get("function") if isinstance(tc, dict) else None
                    if isinstance(fn, dict):
                        call_id = as_str(tc.get("id")) or f"ollama-call-{len(out.tool_calls)}"
                        out.tool_calls.append(ToolCall(call_id, as_str(fn.get("name")) or "", fn.get("arguments")))
            if isinstance(doc.get("response"), str):
                text.append(doc["response"])
            if isinstance(doc.get("thinking"), str) and not isinstance(msg, dict):
                thinking.append(doc["thinking"])
            if doc.get("done") is True:
                out.complete = True
                set_usage(out.usage, "prompt_tokens", doc.get("prompt_eval_count"))
                set_usage(out.usage, "completion_tokens", doc.get("eval_count"))
                set_total(out.usage)
                out.finish_reason = normalize_finish(as_str(doc.get("done_reason")) or "stop")
        out.text = "".join(text)
        out.thinking = "".join(thinking)
        if out.tool_calls and out.finish_reason == "stop":
            out.finish_reason = "tool_calls"
        return out

    def error(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"error": message}
