"""Google Gemini ``generateContent`` / ``streamGenerateContent`` (SSE with ``alt=sse``, or a JSON array).

The model is in the path (``/v1beta/models/<model>:generateContent``). Function calls may
come without an id; the gateway then gives them one (``gemini-call-<n>``) and links the
``functionResponse`` that comes back by name.
"""

from __future__ import annotations

import re
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
    json_text,
    normalize_finish,
    pick_params,
    set_usage,
)
from agentwatch.capture.gateway.sse import is_sse, iter_sse_json

MODEL_IN_PATH = re.compile(r"/models/([^/:]{1,256}):(\w{1,64})")
PARAMS = ("temperature", "topP", "topK", "maxOutputTokens", "candidateCount", "seed")


def _parts_text(parts: Any, *, thoughts: bool = False) -> str:
    out = []
    for p in parts if isinstance(parts, list) else []:
        if isinstance(p, dict) and isinstance(p.get("text"), str) and bool(p.get("thought")) == thoughts:
            out.append(p["text"])
    return "".join(out)


class GeminiProvider(Provider):
    kind = "gemini"
    key_headers = ("x-goog-api-key", "authorization")
    key_query = ("key",)

    def request_model(self, path: str, body: Any) -> str | None:
        m = MODEL_IN_PATH.search(path)
        return m.group(1) if m else None

    def parse_request(self, path: str, body: Any) -> ParsedRequest:
        req = ParsedRequest()
        m = MODEL_IN_PATH.search(path)
        if not m or not isinstance(body, dict):
            req.is_llm_call = False
            return req
        req.model, method = m.group(1), m.group(2)
        if method not in ("generateContent", "streamGenerateContent"):
            req.is_llm_call = False
            req.request_type = "embedding" if "embed" in method.lower() else "other"
            return req
        req.streaming = method == "streamGenerateContent"
        req.parameters = pick_params(body.get("generationConfig"), PARAMS)
        for t in as_list(body.get("tools")):
            if not isinstance(t, dict):
                continue
            for fd in as_list(t.get("functionDeclarations") or t.get("function_declarations")):
                if isinstance(fd, dict) and isinstance(fd.get("name"), str):
                    entry = {"name": fd["name"], "type": "function"}
                    if isinstance(fd.get("description"), str):
                        entry["description"] = fd["description"][:1000]
                    req.tools.append(entry)
        system = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(system, dict):
            req.messages.append({"role": "system", "content": _parts_text(system.get("parts"))})
        for c in as_list(body.get("contents")):
            if not isinstance(c, dict):
                continue
            parts = as_list(c.get("parts"))
            role = "assistant" if c.get("role") == "model" else "user"
            for p in parts:
                fr = p.get("functionResponse") if isinstance(p, dict) else None
                if isinstance(fr, dict):
                    response = fr.get("response")
                    text = response if isinstance(response, str) else json_text(response)
                    name = as_str(fr.get("name"))
                    req.tool_results.append(ToolResult(as_str(fr.get("id")), name, text))
                    req.messages.append({"role": "tool", "content": text, "name": name or ""})
            text = _parts_text(parts)
            if text or not any(isinstance(p, dict) and "functionResponse" in p for p in parts):
                req.messages.append({"role": role, "content": text})
        return req

    def parse_response(self, path: str, req: ParsedRequest, body: bytes, content_type: str) -> ParsedResponse:
        chunks: list[Any]
        if is_sse(content_type, body):
            chunks = [doc for _, doc in iter_sse_json(body)]
        else:
            try:
                doc = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                return ParsedResponse(complete=False)
            chunks = doc if isinstance(doc, list) else [doc]
        out = ParsedResponse(complete=False)
        text: list[str] = []
        thinking: list[str] = []
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            if isinstance(chunk.get("error"), dict):
                err = chunk["error"]
                out.error = {"type": str(err.get("status", "error")), "message": str(err.get("message", ""))[:1000]}
                out.finish_reason = "error"
                out.complete = True
                continue
            out.provider_request_id = out.provider_request_id or as_str(chunk.get("responseId"))
            out.model = out.model or as_str(chunk.get("modelVersion"))
            um = chunk.get("usageMetadata")
            if isinstance(um, dict):
                set_usage(out.usage, "prompt_tokens", um.get("promptTokenCount"))
                set_usage(out.usage, "completion_tokens", um.get("candidatesTokenCount"))
                set_usage(out.usage, "total_tokens", um.get("totalTokenCount"))
                set_usage(out.usage, "cached_tokens", um.get("cachedContentTokenCount"))
                set_usage(out.usage, "reasoning_tokens", um.get("thoughtsTokenCount"))
            for cand in as_list(chunk.get("candidates")):
                if not isinstance(cand, dict) or cand.get("index", 0) != 0:
                    continue
                parts = as_list(as_dict(cand.get("content")).get("parts"))
                text.append(_parts_text(parts))
                thinking.append(_parts_text(parts, thoughts=True))
                for p in parts:
                    fc = p.get("functionCall") if isinstance(p, dict) else None
                    if isinstance(fc, dict):
                        call_id = as_str(fc.get("id")) or f"gemini-call-{len(out.tool_calls)}"
                        name = as_str(fc.get("name")) or ""
                        out.tool_calls.append(ToolCall(call_id, name, fc.get("args") or {}))
                if cand.get("finishReason"):
                    out.finish_reason = normalize_finish(cand["finishReason"])
                    out.complete = True
        out.text = "".join(text)
        out.thinking = "".join(thinking)
        if out.tool_calls and out.finish_reason == "stop":
            out.finish_reason = "tool_calls"
        return out

    def error(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": "PERMISSION_DENIED" if status == 403 else "INVALID_ARGUMENT",
            }
        }
