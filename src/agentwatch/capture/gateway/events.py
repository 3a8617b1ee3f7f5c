"""Building the OISP events of one exchange: ai.request, ai.response, agent.tool_call, agent.tool_result.

Links: the response is the request's child (``related_events`` parent), each tool call is
caused by the response, and a tool result that comes back in a later request points at
its tool call and shares its trace. Every content string goes through the redactor first,
so what reaches the pipeline (store, live streams, detectors) is already redacted.
"""

from __future__ import annotations

import os
import re
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from ulid import ULID

from agentwatch import __version__
from agentwatch.capture.cost import PriceTable, price_usage
from agentwatch.capture.gateway.exchange import Exchange
from agentwatch.capture.gateway.identify import ProviderIndex, key_facts
from agentwatch.capture.gateway.providers.base import (
    ParsedRequest,
    ParsedResponse,
    ToolResult,
    json_text,
    set_total,
)
from agentwatch.capture.redact import Mode, Redactor, Report, content_hash
from agentwatch.events.model import iso

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
MAX_MESSAGE_CHARS = 64 * 1024
MAX_MESSAGES_WITH_CONTENT = 64
MAX_TRACKED_CALLS = 50_000
HOSTNAME = socket.gethostname()

TOOL_TYPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"bash|shell|exec|command|terminal|run_?cmd|subprocess", re.I), "shell"),
    (re.compile(r"edit|patch|replace|str_replace", re.I), "file_edit"),
    (re.compile(r"write|save|create_file|append", re.I), "file_write"),
    (re.compile(r"read|open_file|cat|view|glob|list_dir|ls\b", re.I), "file_read"),
    (re.compile(r"browser|navigate|click|screenshot|page", re.I), "browser"),
    (re.compile(r"http|fetch|curl|request|url|web", re.I), "http"),
    (re.compile(r"sql|query|database|db_", re.I), "database"),
    (re.compile(r"python|code|eval|notebook|jupyter", re.I), "code_execution"),
    (re.compile(r"search|grep|find|lookup", re.I), "search"),
    (re.compile(r"retriev|rag|vector|embed", re.I), "retrieval"),
    (re.compile(r"computer", re.I), "computer_use"),
]
RISK = {"shell": "high", "code_execution": "high", "file_write": "medium", "file_edit": "medium", "http": "medium"}


TOOL_DEF_TYPES = {
    "function": "function",
    "custom": "function",
    "code_interpreter": "code_interpreter",
    "file_search": "file_search",
    "computer_use": "computer_use",
}


def tool_def_type(kind: object) -> str:
    """A provider's tool definition type in OISP's words (``computer_20241022`` -> ``computer_use``)."""
    k = str(kind or "function").lower()
    if k in TOOL_DEF_TYPES:
        return TOOL_DEF_TYPES[k]
    if k.startswith("computer"):
        return "computer_use"
    return "other"


def tool_type(name: str) -> str:
    if not isinstance(name, str):
        return "other"
    for rx, kind in TOOL_TYPES:
        if rx.search(name):
            return kind
    return "other"


def _args_hash(args: dict[str, Any], redacted: Any) -> str:
    """Hash of a tool call's arguments; of their redacted form when nested deeper than orjson writes."""
    try:
        return content_hash(orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
    except TypeError:
        return content_hash(orjson.dumps(redacted, option=orjson.OPT_SORT_KEYS))


def new_id() -> str:
    return str(ULID())


def new_span() -> str:
    return os.urandom(8).hex()


def new_trace() -> str:
    return os.urandom(16).hex()


@dataclass
class CallRecord:
    event_id: str
    trace_id: str
    span_id: str
    name: str
    ts: float


class CallBook:
    """Tool calls waiting for their result: call id -> where the call was recorded (bounded LRU)."""

    def __init__(self, limit: int = MAX_TRACKED_CALLS) -> None:
        self.limit = limit
        self.calls: OrderedDict[tuple[str, str], CallRecord] = OrderedDict()
        self.by_name: OrderedDict[tuple[str, str], str] = OrderedDict()

    def add(self, route: str, call_id: str, rec: CallRecord) -> None:
        self.calls[(route, call_id)] = rec
        self.by_name[(route, rec.name)] = call_id
        while len(self.calls) > self.limit:
            self.calls.popitem(last=False)
        while len(self.by_name) > self.limit:
            self.by_name.popitem(last=False)

    def take(self, route: str, result: ToolResult) -> tuple[str, CallRecord] | None:
        """The pending call this result answers (by id, else by tool name), removed from the book."""
        call_id = result.call_id if isinstance(result.call_id, str) else None
        name = result.name if isinstance(result.name, str) else None
        if not call_id and name:
            call_id = self.by_name.get((route, name))
        if not call_id:
            return None
        rec = self.calls.pop((route, call_id), None)
        if rec is None:
            return None
        if self.by_name.get((route, rec.name)) == call_id:
            del self.by_name[(route, rec.name)]
        return call_id, rec


class TextCache:
    """Redacted form of texts already seen (conversations resend their history every turn)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.items: OrderedDict[tuple[str, str], tuple[Any, list[Any]]] = OrderedDict()

    def redact(self, redactor: Redactor, text: str) -> Any:
        key = (redactor.mode, content_hash(text))
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            value, types = hit
            redactor.report.counts.update(types)
            return value
        before = dict(redactor.report.counts)
        value = redactor.text(text)
        types = []
        for t, c in redactor.report.counts.items():
            types.extend([t] * (c - before.get(t, 0)))
        self.items[key] = (value, types)
        while len(self.items) > self.limit:
            self.items.popitem(last=False)
        return value


def _answer(ex: Exchange, req: ParsedRequest) -> ParsedResponse:
    """The upstream's answer as far as it came; a break, or the agent hanging up, is its error.

    An agent that hangs up once the stream has said its last word (``[DONE]``, ``message_stop``)
    had the whole answer: that is no failure, even if the upstream's closing bytes were not in.
    """
    failure = None
    if ex.upstream_error is not None:
        kind = "client_disconnected" if ex.client_left else "upstream_unreachable"
        failure = {"type": kind, "message": ex.upstream_error[:500]}
        if not ex.response_chunks:
            return ParsedResponse(error=failure, finish_reason="error")
    parsed = ex.provider.parse_response(ex.path, req, ex.response_body, ex.content_type)
    ended = parsed.complete
    if ex.truncated and ex.tail_bytes:
        end = ex.provider.parse_response(ex.path, req, ex.stream_end, ex.content_type)
        _take_stream_end(parsed, end)
        ended = end.complete
    if failure is not None and not (ex.client_left and ended):  # a stream cut midway: kept, as partial
        parsed.error = failure
        parsed.complete = False
        parsed.finish_reason = parsed.finish_reason or "error"
    return parsed


def _take_stream_end(parsed: ParsedResponse, end: ParsedResponse) -> None:
    """Complete what was parsed of a truncated stream with what its kept tail says of its end.

    Only the facts of the end are taken (token counts, finish reason, an error the upstream
    reported): text and tool-call fragments past the capture limit are missing either way.
    """
    if end.usage:
        usage = {**parsed.usage, **end.usage}
        if "total_tokens" not in end.usage:
            set_total(usage)
        parsed.usage = usage
    parsed.finish_reason = end.finish_reason or parsed.finish_reason
    parsed.error = parsed.error or end.error


class EventBuilder:
    def __init__(self, mode: Mode, prices: PriceTable, index: ProviderIndex) -> None:
        self.mode = mode
        self.prices = prices
        self.index = index
        self.book = CallBook()
        self.texts = TextCache()

    # -- envelope -----------------------------------------------------------
    def envelope(
        self,
        event_type: str,
        ts: float,
        ex: Exchange,
        data: dict[str, Any],
        trace_id: str,
        span_id: str,
        parent_span: str | None,
        related: list[dict[str, str]],
        completeness: str,
        reasons: list[str],
    ) -> dict[str, Any]:
        tc: dict[str, Any] = {"trace_id": trace_id, "span_id": span_id}
        if parent_span:
            tc["parent_span_id"] = parent_span
        attrs: dict[str, Any] = {"gateway.route": ex.route}
        if ex.user_agent:
            attrs["http.user_agent"] = ex.user_agent[:256]
        if ex.agent:
            attrs["agent.name"] = ex.agent
        if ex.session_id:
            attrs["session.id"] = ex.session_id
        if ex.client:
            attrs["client.address"] = f"{ex.client[0]}:{ex.client[1]}"
        if ex.guard:
            attrs["guard"] = ex.guard
        proc = ex.process
        if proc and "_agent" in proc and not ex.agent:
            attrs["agent.name"] = proc["_agent"]
            attrs["agent.detection"] = "known_program"
        body: dict[str, Any] = {
            "oisp_version": "0.1",
            "event_id": new_id(),
            "event_type": event_type,
            "ts": iso(ts),
            "host": {"hostname": HOSTNAME},
            "source": {
                "collector": "agentwatch-gateway",
                "collector_version": __version__,
                "capture_method": "mitm_proxy",
                "capture_point": f"gateway:{ex.route}",
            },
            "confidence": {
                "level": "high",
                "completeness": completeness,
                "reasons": reasons,
                "ai_detection_method": "known_endpoint",
            },
            "data": data,
            "trace_context": tc,
            "attrs": attrs,
        }
        if proc:
            body["process"] = {k: v for k, v in proc.items() if not k.startswith("_")}
            body["confidence"]["process_attribution"] = "socket_inode"
        if self.mode != "full":
            body["confidence"]["redaction_applied"] = True
            body["confidence"]["redaction_profile"] = self.mode
        if related:
            body["related_events"] = related
        return body

    def _messages(self, red: Redactor, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        keep_from = max(0, len(messages) - MAX_MESSAGES_WITH_CONTENT)
        for i, m in enumerate(messages):
            text = m.get("content")
            if not isinstance(text, str):
                text = ""
            msg = {k: v for k, v in m.items() if k != "content"}
            msg["content_length"] = len(text)
            if i < keep_from or len(text) > MAX_MESSAGE_CHARS:
                msg["content"] = {
                    "$redacted": {
                        "reason": "policy",
                        "detector": "size_limit",
                        "original_length": len(text),
                        "hash": content_hash(text),
                    }
                }
                if len(text) <= MAX_MESSAGE_CHARS:  # still scanned for the guard's findings
                    self.texts.redact(red, text)
            else:
                msg["content"] = self.texts.redact(red, text)
            out.append(msg)
        return out

    # -- the events of one exchange -------------------------------------------
    def build(self, ex: Exchange) -> tuple[list[dict[str, Any]], Report, ParsedResponse | None]:
        """The OISP bodies of this exchange (request first) and what redaction found."""
        red = Redactor(self.mode)
        req = ex.parsed()
        bodies: list[dict[str, Any]] = []

        trace_id, parent_span = None, None
        if ex.traceparent:
            m = TRACEPARENT.match(ex.traceparent.strip().lower())
            if m:
                trace_id, parent_span = m.group(1), m.group(2)

        # tool results carried by this request (answers to calls recorded earlier)
        results: list[tuple[ToolResult, str, CallRecord]] = []
        for r in req.tool_results:
            hit = self.book.take(ex.route, r)
            if hit is not None:
                results.append((r, hit[0], hit[1]))
        if trace_id is None and results:
            trace_id = results[0][2].trace_id
        trace_id = trace_id or new_trace()

        result_ids: list[str] = []
        for r, call_id, rec in results:
            text = r.content if isinstance(r.content, str) else json_text(r.content)
            span = new_span()
            data = {
                "tool": {"name": rec.name, "type": tool_type(rec.name)},
                "call_id": call_id,
                "success": not r.is_error,
                "result": self.texts.redact(red, text)
                if len(text) <= MAX_MESSAGE_CHARS
                else {
                    "$redacted": {
                        "reason": "policy",
                        "detector": "size_limit",
                        "original_length": len(text),
                        "hash": content_hash(text),
                    }
                },
                "result_hash": content_hash(text),
                "result_size_bytes": len(text.encode("utf-8", "replace")),
                "duration_ms": max(0, int((ex.ts - rec.ts) * 1000)),
            }
            if r.is_error:
                data["error"] = {"type": "tool_error", "message": "the tool reported an error"}
            if ex.agent:
                data["agent"] = {"name": ex.agent, **({"session_id": ex.session_id} if ex.session_id else {})}
            body = self.envelope(
                "agent.tool_result",
                ex.ts,
                ex,
                data,
                rec.trace_id,
                span,
                rec.span_id,
                [{"event_id": rec.event_id, "relationship": "parent"}],
                "full" if self.mode == "full" else "redacted",
                ["tool_result_in_next_request"],
            )
            bodies.append(body)
            result_ids.append(body["event_id"])

        # ai.request
        request_id = "req_" + new_id()
        req_span = new_span()
        rdata: dict[str, Any] = {
            "request_id": request_id,
            "provider": {"name": ex.provider.name, "endpoint": ex.endpoint},
            "request_type": req.request_type,
            "streaming": req.streaming,
        }
        if req.model:
            rdata["model"] = {"id": req.model}
        auth = key_facts(ex.api_key, self.index)
        if auth:
            rdata["auth"] = auth
        if req.conversation_id:
            rdata["conversation_id"] = req.conversation_id
        if req.messages:
            rdata["messages"] = self._messages(red, req.messages)
            rdata["messages_count"] = len(req.messages)
            rdata["has_system_prompt"] = any(m.get("role") == "system" for m in req.messages)
            rdata["has_images"] = any(m.get("has_images") for m in req.messages)
        if req.tools:
            rdata["tools"] = [{**t, "type": tool_def_type(t.get("type"))} for t in req.tools[:256]]
            rdata["tools_count"] = len(req.tools)
        if req.tool_choice:
            rdata["tool_choice"] = req.tool_choice
        if req.parameters:
            rdata["parameters"] = req.parameters
        req_reasons = ["gateway_capture", "payload_parsed"]
        if ex.request_redactions:
            req_reasons.append("secrets_masked_before_forwarding")
        req_body = self.envelope(
            "ai.request",
            ex.ts,
            ex,
            rdata,
            trace_id,
            req_span,
            parent_span,
            [{"event_id": i, "relationship": "caused_by"} for i in result_ids],
            "full" if self.mode == "full" else "redacted",
            req_reasons,
        )
        bodies.append(req_body)

        # ai.response (absent when the guard blocked before forwarding and the block is recorded apart)
        if ex.status_code is None and ex.upstream_error is None:
            return bodies, red.report, None
        parsed = _answer(ex, req)
        resp_span = new_span()
        rred = Redactor(self.mode)  # response findings are kept apart from the request's
        end = ex.t_end or ex.t0
        resp_ts = ex.ts + (end - ex.t0)
        status = ex.status_code or 502
        ok = 200 <= status < 300 and parsed.error is None
        model = next((m for m in (parsed.model, req.model) if isinstance(m, str) and m), None)
        ddata: dict[str, Any] = {
            "request_id": request_id,
            "provider": {"name": ex.provider.name, "endpoint": ex.endpoint},
            "status_code": status,
            "success": ok,
            "latency_ms": int(round((end - ex.t0) * 1000)),
        }
        if parsed.provider_request_id:
            ddata["provider_request_id"] = str(parsed.provider_request_id)[:256]
        if model:
            ddata["model"] = {"id": model}
        if ex.t_first is not None and req.streaming:
            ddata["time_to_first_token_ms"] = int(round((ex.t_first - ex.t0) * 1000))
        if parsed.error:
            ddata["error"] = parsed.error
        elif not ok:
            ddata["error"] = {"type": f"http_{status}", "message": f"upstream answered {status}"}
        if parsed.finish_reason:
            ddata["finish_reason"] = parsed.finish_reason
        text = parsed.text if isinstance(parsed.text, str) else ""
        if text or parsed.finish_reason:
            ddata["choices"] = [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.texts.redact(rred, text[:MAX_MESSAGE_CHARS]),
                    },
                    **({"finish_reason": parsed.finish_reason} if parsed.finish_reason else {}),
                }
            ]
        if parsed.thinking and isinstance(parsed.thinking, str):
            ddata["thinking"] = self.texts.redact(rred, parsed.thinking[:MAX_MESSAGE_CHARS])
        if parsed.usage:
            usage = dict(parsed.usage)
            price_usage(self.prices, ex.provider.name, model, usage)
            ddata["usage"] = usage
        calls = []
        for tc in parsed.tool_calls:
            tc.id = tc.id if isinstance(tc.id, str) else ""
            tc.name = tc.name if isinstance(tc.name, str) else ""
            tc.type = tc.type if isinstance(tc.type, str) else "function"
            args = tc.arguments_object()
            redacted = rred.value(args)
            calls.append(
                {
                    "id": tc.id,
                    "name": tc.name,
                    "type": tc.type,
                    "arguments": redacted,
                    "arguments_hash": _args_hash(args, redacted),
                }
            )
        if calls:
            ddata["tool_calls"] = calls
            ddata["tool_calls_count"] = len(calls)
        reasons = ["gateway_capture"]
        if req.streaming:
            reasons.append("streaming_reassembled")
        if parsed.usage:
            reasons.append("usage_from_api")
        missing = []
        if ex.truncated:
            missing.append("response_body_after_capture_limit")
        resp_body = self.envelope(
            "ai.response",
            resp_ts,
            ex,
            ddata,
            trace_id,
            resp_span,
            req_span,
            [{"event_id": req_body["event_id"], "relationship": "parent"}],
            "partial" if (ex.truncated or not parsed.complete) else ("full" if self.mode == "full" else "redacted"),
            reasons,
        )
        if missing:
            resp_body["confidence"]["missing"] = missing
        bodies.append(resp_body)

        for tc, call in zip(parsed.tool_calls, calls, strict=True):
            span = new_span()
            kind = tool_type(tc.name)
            data = {
                "tool": {"name": tc.name, "type": kind},
                "call_id": tc.id,
                "triggered_by": "llm_decision",
                "arguments": call["arguments"] if isinstance(call["arguments"], dict) else {"value": call["arguments"]},
                "arguments_hash": call["arguments_hash"],
                "risk_level": RISK.get(kind, "low"),
            }
            if ex.agent:
                data["agent"] = {"name": ex.agent, **({"session_id": ex.session_id} if ex.session_id else {})}
            body = self.envelope(
                "agent.tool_call",
                resp_ts,
                ex,
                data,
                trace_id,
                span,
                resp_span,
                [{"event_id": resp_body["event_id"], "relationship": "caused_by"}],
                "full" if self.mode == "full" else "redacted",
                ["llm_tool_call_observed"],
            )
            bodies.append(body)
            if tc.id:
                self.book.add(ex.route, tc.id, CallRecord(body["event_id"], trace_id, span, tc.name, resp_ts))
        return bodies, red.report, parsed
