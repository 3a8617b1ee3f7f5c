"""OpenAI wire format: chat completions, the Responses API, legacy completions, embeddings.

Also used for any OpenAI-compatible upstream (vLLM, LM Studio, Groq, ...). Streams are
rebuilt from deltas: tool calls by their ``index`` (name and argument fragments joined),
and usage from the final chunk sent with ``stream_options.include_usage``.
"""

from __future__ import annotations

from typing import Any

import orjson

from agentwatch.capture.gateway.providers.base import (
    MESSAGE_ROLES,
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
    role_of,
    set_total,
    set_usage,
    text_of,
)
from agentwatch.capture.gateway.sse import is_sse, iter_sse_json

NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "n")
INTEGER_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
STRING_PARAMS = ("reasoning_effort",)


def _tool_defs(tools: Any) -> list[dict[str, Any]]:
    out = []
    for t in tools if isinstance(tools, list) else []:
        if not isinstance(t, dict):
            continue
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        name = fn.get("name")
        entry: dict[str, Any] = {"type": as_str(t.get("type")) or "function"}
        if isinstance(name, str):
            entry["name"] = name
        if isinstance(fn.get("description"), str):
            entry["description"] = fn["description"][:1000]
        out.append(entry)
    return out


def _tool_choice(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return "specific"
    return None


def _usage(u: Any) -> dict[str, int]:
    usage: dict[str, int] = {}
    if not isinstance(u, dict):
        return usage
    set_usage(usage, "prompt_tokens", u.get("prompt_tokens", u.get("input_tokens")))
    set_usage(usage, "completion_tokens", u.get("completion_tokens", u.get("output_tokens")))
    set_usage(usage, "total_tokens", u.get("total_tokens"))
    details = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
    if isinstance(details, dict):
        set_usage(usage, "cached_tokens", details.get("cached_tokens"))
    out_details = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
    if isinstance(out_details, dict):
        set_usage(usage, "reasoning_tokens", out_details.get("reasoning_tokens"))
    if "total_tokens" not in usage:
        set_total(usage)
    return usage


def _stream_error(doc: dict[str, Any]) -> dict[str, str]:
    """A Responses stream's ``error`` event (``code`` and ``message`` at its top, or in ``error``)."""
    err = doc["error"] if isinstance(doc.get("error"), dict) else doc
    kind = as_str(err.get("code")) or as_str(err.get("type"))
    return {
        "type": (kind if kind and kind != "error" else "error")[:256],
        "message": str(err.get("message", ""))[:1000],
    }


class OpenAIProvider(Provider):
    kind = "openai"
    key_headers = ("authorization", "api-key")

    # -- requests ---------------------------------------------------------
    def parse_request(self, path: str, body: Any) -> ParsedRequest:
        req = ParsedRequest()
        if not isinstance(body, dict):
            req.is_llm_call = False
            return req
        req.model = body.get("model") if isinstance(body.get("model"), str) else None
        req.streaming = body.get("stream") is True
        req.parameters = pick_params(body, NUMBER_PARAMS, INTEGER_PARAMS, STRING_PARAMS)
        req.tools = _tool_defs(body.get("tools"))
        req.tool_choice = _tool_choice(body.get("tool_choice"))
        if path.endswith("/responses"):
            self._responses_request(body, req)
        elif path.endswith("/embeddings"):
            req.request_type = "embedding"
        elif path.endswith("/completions") and not path.endswith("/chat/completions"):
            req.request_type = "completion"
            prompt = body.get("prompt")
            if isinstance(prompt, str):
                req.messages.append({"role": "user", "content": prompt})
        elif path.endswith("/chat/completions"):
            self._chat_request(body, req)
        else:
            req.is_llm_call = False
        return req

    def _chat_request(self, body: dict[str, Any], req: ParsedRequest) -> None:
        for m in as_list(body.get("messages")):
            if not isinstance(m, dict):
                continue
            role = role_of(m.get("role"))
            if role not in MESSAGE_ROLES:
                role = "user"
            msg: dict[str, Any] = {"role": role, "content": text_of(m.get("content"))}
            if has_images(m.get("content")):
                msg["has_images"] = True
            if isinstance(m.get("tool_call_id"), str):
                msg["tool_call_id"] = m["tool_call_id"]
            if isinstance(m.get("name"), str):
                msg["name"] = m["name"]
            req.messages.append(msg)
            if role == "tool" and isinstance(m.get("tool_call_id"), str):
                req.tool_results.append(ToolResult(m["tool_call_id"], as_str(m.get("name")), msg["content"]))

    def _responses_request(self, body: dict[str, Any], req: ParsedRequest) -> None:
        if isinstance(body.get("instructions"), str):
            req.messages.append({"role": "system", "content": body["instructions"]})
        items = body.get("input")
        if isinstance(items, str):
            req.messages.append({"role": "user", "content": items})
            items = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            kind = item.get("type", "message")
            if kind == "function_call_output":
                output = item.get("output")
                text = output if isinstance(output, str) else text_of(output)
                call_id = as_str(item.get("call_id"))
                msg: dict[str, Any] = {"role": "tool", "content": text}
                if call_id is not None:
                    msg["tool_call_id"] = call_id
                req.messages.append(msg)
                req.tool_results.append(ToolResult(call_id, None, text))
            elif kind == "message" or "role" in item:
                role = role_of(item.get("role"))
                req.messages.append(
                    {"role": role if role in MESSAGE_ROLES else "user", "content": text_of(item.get("content"))}
                )
        if isinstance(body.get("previous_response_id"), str):
            req.conversation_id = body["previous_response_id"]

    # -- responses --------------------------------------------------------
    def parse_response(self, path: str, req: ParsedRequest, body: bytes, content_type: str) -> ParsedResponse:
        responses_api = path.endswith("/responses")
        if is_sse(content_type, body):
            return self._responses_stream(body) if responses_api else self._chat_stream(body)
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return ParsedResponse(complete=False)
        if not isinstance(doc, dict):
            return ParsedResponse(complete=False)
        if isinstance(doc.get("error"), dict):
            err = doc["error"]
            return ParsedResponse(
                error={"type": str(err.get("type", "error")), "message": str(err.get("message", ""))[:1000]},
                finish_reason="error",
            )
        if responses_api:
            return self._responses_object(doc)
        return self._chat_object(doc)

    def _chat_object(self, doc: dict[str, Any]) -> ParsedResponse:
        out = ParsedResponse(provider_request_id=as_str(doc.get("id")), model=as_str(doc.get("model")))
        out.usage = _usage(doc.get("usage"))
        for choice in as_list(doc.get("choices")):
            if not isinstance(choice, dict):
                continue
            msg = choice.get("message") or {}
            if "text" in choice:  # legacy completions
                out.text += text_of(choice.get("text"))
            if isinstance(msg, dict):
                out.text += text_of(msg.get("content"))
                for key in ("reasoning_content", "reasoning"):
                    if isinstance(msg.get(key), str):
                        out.thinking += msg[key]
                for tc in as_list(msg.get("tool_calls")):
                    if isinstance(tc, dict):
                        fn = as_dict(tc.get("function"))
                        out.tool_calls.append(
                            ToolCall(as_str(tc.get("id")) or "", as_str(fn.get("name")) or "", fn.get("arguments"))
                        )
            out.finish_reason = out.finish_reason or normalize_finish(choice.get("finish_reason"))
        return out

    def _chat_stream(self, body: bytes) -> ParsedResponse:
        out = ParsedResponse()
        calls: dict[tuple[int, int, str], dict[str, Any]] = {}
        text: list[str] = []
        thinking: list[str] = []
        saw_done = b"data: [DONE]" in body
        for _event, chunk in iter_sse_json(body):
            if not isinstance(chunk, dict):
                continue
            out.provider_request_id = out.provider_request_id or as_str(chunk.get("id"))
            out.model = out.model or as_str(chunk.get("model"))
            if isinstance(chunk.get("usage"), dict):  # the final chunk with include_usage
                out.usage = _usage(chunk["usage"])
            if isinstance(chunk.get("error"), dict):
                out.error = {
                    "type": str(chunk["error"].get("type", "error")),
                    "message": str(chunk["error"].get("message", ""))[:1000],
                }
            for choice in as_list(chunk.get("choices")):
                if not isinstance(choice, dict):
                    continue
                if isinstance(choice.get("text"), str):  # legacy completions stream their text here
                    text.append(choice["text"])
                delta = choice.get("delta") or {}
                if isinstance(delta, dict):
                    if isinstance(delta.get("content"), str):
                        text.append(delta["content"])
                    for key in ("reasoning_content", "reasoning"):
                        if isinstance(delta.get(key), str):
                            thinking.append(delta[key])
                    for tc in as_list(delta.get("tool_calls")):
                        if not isinstance(tc, dict):
                            continue
                        idx = index_key(tc.get("index", len(calls)))
                        slot = calls.setdefault(idx, {"id": "", "name": "", "args": [], "type": "function"})
                        if as_str(tc.get("id")):
                            slot["id"] = tc["id"]
                        if as_str(tc.get("type")):
                            slot["type"] = tc["type"]
                        fn = as_dict(tc.get("function"))
                        if as_str(fn.get("name")) and not slot["name"]:
                            slot["name"] = fn["name"]
                        if isinstance(fn.get("arguments"), str):
                            slot["args"].append(fn["arguments"])
                if choice.get("finish_reason"):
                    out.finish_reason = normalize_finish(choice["finish_reason"])
        out.text = "".join(text)
        out.thinking = "".join(thinking)
        out.tool_calls = [ToolCall(s["id"], s["name"], "".join(s["args"]), s["type"]) for _, s in sorted(calls.items())]
        out.complete = saw_done or out.finish_reason is not None
        return out

    def _responses_object(self, doc: dict[str, Any]) -> ParsedResponse:
        out = ParsedResponse(provider_request_id=as_str(doc.get("id")), model=as_str(doc.get("model")))
        out.usage = _usage(doc.get("usage"))
        for item in as_list(doc.get("output")):
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "message":
                out.text += text_of(item.get("content"))
            elif kind == "function_call":
                out.tool_calls.append(
                    ToolCall(
                        as_str(item.get("call_id")) or as_str(item.get("id")) or "",
                        as_str(item.get("name")) or "",
                        item.get("arguments"),
                    )
                )
            elif kind == "reasoning":
                out.thinking += text_of(item.get("summary")) + text_of(item.get("content"))
        status = doc.get("status")
        if out.tool_calls:
            out.finish_reason = "tool_calls"
        elif status == "incomplete":
            details = doc.get("incomplete_details") or {}
            out.finish_reason = (
                normalize_finish(details.get("reason") if isinstance(details, dict) else None) or "length"
            )
        else:
            out.finish_reason = normalize_finish(status)
        if isinstance(doc.get("error"), dict):
            out.error = {
                "type": str(doc["error"].get("code", "error")),
                "message": str(doc["error"].get("message", ""))[:1000],
            }
        return out

    def _responses_stream(self, body: bytes) -> ParsedResponse:
        final: dict[str, Any] | None = None
        items: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        text: list[str] = []
        thinking: list[str] = []
        error: dict[str, str] | None = None
        for event, doc in iter_sse_json(body):
            if not isinstance(doc, dict):
                continue
            kind = doc.get("type") or event
            if kind == "error":  # the stream's own error event: the answer ends there
                error = _stream_error(doc)
            elif kind in ("response.completed", "response.incomplete", "response.failed") and isinstance(
                doc.get("response"), dict
            ):
                final = doc["response"]
            elif kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
                text.append(doc["delta"])
            elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") and isinstance(
                doc.get("delta"), str
            ):
                thinking.append(doc["delta"])
            elif kind == "response.output_item.added" and isinstance(doc.get("item"), dict):
                item = doc["item"]
                if item.get("type") == "function_call":
                    key = str(item.get("id") or doc.get("output_index"))
                    items[key] = {
                        "call_id": as_str(item.get("call_id")) or "",
                        "name": as_str(item.get("name")) or "",
                        "args": [],
                    }
                    order.append(key)
            elif kind == "response.function_call_arguments.delta":
                key = str(doc.get("item_id") or doc.get("output_index"))
                if key in items and isinstance(doc.get("delta"), str):
                    items[key]["args"].append(doc["delta"])
        if final is not None:
            out = self._responses_object(final)
            if not out.text:
                out.text = "".join(text)
            if not out.thinking:
                out.thinking = "".join(thinking)
            out.error = out.error or error
            return out
        out = ParsedResponse(text="".join(text), thinking="".join(thinking), complete=False, error=error)
        out.tool_calls = [
            ToolCall(str(items[k]["call_id"]), str(items[k]["name"]), "".join(items[k]["args"])) for k in order
        ]
        if out.tool_calls:
            out.finish_reason = "tool_calls"
        elif error is not None:
            out.finish_reason = "error"
        return out

    def error(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
