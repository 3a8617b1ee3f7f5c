"""Mapping OpenTelemetry GenAI telemetry into OISP ``ai.*`` and ``agent.*`` events.

Understood attribute generations:

- current semantic conventions: ``gen_ai.operation.name``, ``gen_ai.provider.name`` (or the
  older ``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.response.model``,
  ``gen_ai.response.id``, ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` /
  ``output_tokens``, ``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
  ``gen_ai.system_instructions`` (JSON), ``gen_ai.tool.name`` / ``gen_ai.tool.call.id`` /
  ``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``, ``gen_ai.conversation.id``,
  ``gen_ai.agent.name``;
- the older flattened form still sent by OpenLLMetry: ``gen_ai.prompt.<i>.role|content|
  tool_call_id``, ``gen_ai.completion.<i>.role|content|finish_reason|tool_calls.<j>.id|name|
  arguments``, ``gen_ai.usage.prompt_tokens`` / ``completion_tokens``, ``llm.request.functions.<i>.name``;
- span events and log records named ``gen_ai.system.message``, ``gen_ai.user.message``,
  ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and ``gen_ai.choice``.

An LLM span becomes an ``ai.request`` (at its start) and an ``ai.response`` (at its end) plus
one ``agent.tool_call`` per tool call in the output; an ``execute_tool`` span becomes an
``agent.tool_call`` and its ``agent.tool_result``. Event ids derive from the span ids, so a
re-sent export deduplicates. Content goes through the capture redactor first.

Values the mapping turns into numbers are checked first (`capture.otlp_values`: :func:`check_span`, :func:`check_log`):
timestamps must lie in 0..2**64-1 ns; ``process.pid`` and the token counts, when they are
numbers (or digit strings), must be whole numbers from 0 to 2**53, else the span is refused with
an :class:`ItemError` naming the attribute (the codec turns it into a 400 with the request path).
Other attributes are carried along as the decoder read them: their integers are int64 (the
decoder refuses larger ones), so every event body stays serialisable. Content that came as JSON
text (messages, tool arguments) is read defensively: a wrong shape is ignored, never a crash,
and tool arguments too deeply nested to store are refused naming the attribute.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from typing import Any

import orjson

from agentwatch.capture.gateway.events import tool_def_type, tool_type
from agentwatch.capture.gateway.identify import oisp_provider
from agentwatch.capture.gateway.providers.base import MESSAGE_ROLES, normalize_finish, text_of
from agentwatch.capture.otlp_values import (
    TOKEN_KEYS,
    ItemError,
    attr,
    check_log,
    check_span,
    count,
    dumps,
    json_value,
    whole,
)
from agentwatch.capture.redact import Redactor, content_hash
from agentwatch.events.model import EventError, iso

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion", "embeddings", "embedding"}
PROMPT_KEY = re.compile(r"^gen_ai\.prompt\.(\d{1,4})\.(\w{1,32})$", re.ASCII)
COMPLETION_KEY = re.compile(r"^gen_ai\.completion\.(\d{1,4})\.(\w{1,32})$", re.ASCII)
COMPLETION_TOOL_KEY = re.compile(r"^gen_ai\.completion\.(\d{1,4})\.tool_calls\.(\d{1,4})\.(\w{1,32})$", re.ASCII)
FUNCTION_KEY = re.compile(r"^llm\.request\.functions\.(\d{1,4})\.name$", re.ASCII)
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
}


def _s(v: Any, limit: int = 256) -> str:
    """A name or id out of JSON text: scalars as text, anything else (objects, lists) is no name."""
    if isinstance(v, str):
        return v[:limit]
    if isinstance(v, bool | int | float):
        return str(v)[:limit]
    return ""


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _role(v: Any) -> str:
    r = str(v or "user").lower()
    r = {"model": "assistant", "developer": "system", "human": "user", "ai": "assistant"}.get(r, r)
    return r if r in MESSAGE_ROLES else "user"


def _parts_text(parts: Any) -> str:
    out = []
    for p in parts if isinstance(parts, list) else []:
        if isinstance(p, dict) and p.get("type") in ("text", "reasoning", None) and isinstance(p.get("content"), str):
            out.append(p["content"])
    return "\n".join(out)


def _tool_calls_of_parts(parts: Any) -> list[dict[str, Any]]:
    calls = []
    for p in parts if isinstance(parts, list) else []:
        if isinstance(p, dict) and p.get("type") == "tool_call":
            calls.append({"id": _s(p.get("id")), "name": _s(p.get("name")), "arguments": p.get("arguments")})
    return calls


class Conversation:
    """The request and response side of one GenAI operation, as far as the telemetry tells."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.output_text: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.tools: list[dict[str, Any]] = []

    def from_attributes(self, a: dict[str, Any]) -> None:
        system = json_value(a.get("gen_ai.system_instructions"))
        if system:
            self.messages.append(
                {"role": "system", "content": _parts_text(system) if isinstance(system, list) else text_of(system)}
            )
        inputs = json_value(a.get("gen_ai.input.messages"))
        for m in inputs if isinstance(inputs, list) else []:
            if isinstance(m, dict):
                msg = {
                    "role": _role(m.get("role")),
                    "content": _parts_text(m.get("parts")) or text_of(m.get("content")),
                }
                for p in _list(m.get("parts")):
                    if isinstance(p, dict) and p.get("type") == "tool_call_response":
                        msg = {
                            "role": "tool",
                            "content": text_of(p.get("response"))
                            if not isinstance(p.get("response"), str)
                            else p["response"],
                            "tool_call_id": _s(p.get("id")),
                        }
                self.messages.append(msg)
        outputs = json_value(a.get("gen_ai.output.messages"))
        for m in outputs if isinstance(outputs, list) else []:
            if isinstance(m, dict):
                self.output_text.append(_parts_text(m.get("parts")) or text_of(m.get("content")))
                self.tool_calls += [
                    {**tc, "source": attr("gen_ai.output.messages")} for tc in _tool_calls_of_parts(m.get("parts"))
                ]
                self.finish = self.finish or normalize_finish(m.get("finish_reason"))
        # older flattened attributes
        prompts: dict[int, dict[str, Any]] = defaultdict(dict)
        completions: dict[int, dict[str, Any]] = defaultdict(dict)
        calls: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
        functions: dict[int, str] = {}
        for key, value in a.items():
            if not key.startswith(("gen_ai.prompt.", "gen_ai.completion.", "llm.request.functions.")):
                continue
            if m := COMPLETION_TOOL_KEY.fullmatch(key):
                calls[(int(m.group(1)), int(m.group(2)))][m.group(3)] = value
            elif m := PROMPT_KEY.fullmatch(key):
                prompts[int(m.group(1))][m.group(2)] = value
            elif m := COMPLETION_KEY.fullmatch(key):
                completions[int(m.group(1))][m.group(2)] = value
            elif m := FUNCTION_KEY.fullmatch(key):
                functions[int(m.group(1))] = str(value)
        for _, p in sorted(prompts.items()):
            msg = {"role": _role(p.get("role")), "content": text_of(json_value(p.get("content")))}
            if p.get("tool_call_id"):
                msg["role"] = "tool"
                msg["tool_call_id"] = str(p["tool_call_id"])
            self.messages.append(msg)
        for _, c in sorted(completions.items()):
            if c.get("content") is not None:
                self.output_text.append(text_of(json_value(c.get("content"))))
            self.finish = self.finish or normalize_finish(c.get("finish_reason"))
        for (i, j), tc in sorted(calls.items()):
            self.tool_calls.append(
                {
                    "id": _s(tc.get("id")),
                    "name": _s(tc.get("name")),
                    "arguments": tc.get("arguments"),
                    "source": attr(f"gen_ai.completion.{i}.tool_calls.{j}.arguments"),
                }
            )
        self.tools += [{"name": n, "type": "function"} for _, n in sorted(functions.items())]
        defs = json_value(a.get("gen_ai.tool.definitions"))
        for d in defs if isinstance(defs, list) else []:
            if isinstance(d, dict):
                name = d.get("name") or _dict(d.get("function")).get("name")
                if isinstance(name, str):
                    self.tools.append({"name": name[:256], "type": _s(d.get("type", "function"), 64)})
        reasons = a.get("gen_ai.response.finish_reasons")
        if isinstance(reasons, list) and reasons:
            self.finish = self.finish or normalize_finish(reasons[0])
        elif isinstance(reasons, str):
            self.finish = self.finish or normalize_finish(reasons)

    def from_event(self, name: str, attrs: dict[str, Any], body: Any = None, where: str = "") -> None:
        """A span event or log record; ``where`` names it in errors (``events[0].attributes``, ``body``)."""
        payload = body if isinstance(body, dict) else {}
        merged = {**payload, **{k: v for k, v in attrs.items() if not k.startswith("gen_ai.system")}}
        if name in MESSAGE_EVENTS:
            content = merged.get("content", body if isinstance(body, str) else None)
            msg = {"role": MESSAGE_EVENTS[name], "content": text_of(json_value(content))}
            if merged.get("id") and name == "gen_ai.tool.message":
                msg["tool_call_id"] = str(merged["id"])
            self.messages.append(msg)
        elif name == "gen_ai.choice":
            message = merged.get("message") if isinstance(merged.get("message"), dict) else merged
            self.output_text.append(text_of(json_value(message.get("content"))))
            for tc in _list(message.get("tool_calls")):
                if isinstance(tc, dict):
                    fn = _dict(tc.get("function"))
                    self.tool_calls.append(
                        {
                            "id": _s(tc.get("id")),
                            "name": _s(fn.get("name")),
                            "arguments": fn.get("arguments"),
                            "source": where or "attributes",
                        }
                    )
            self.finish = self.finish or normalize_finish(merged.get("finish_reason"))


def _args_object(v: Any) -> dict[str, Any]:
    v = json_value(v)
    if isinstance(v, dict):
        return v
    if v is None:
        return {}
    return {"value": v}


def _envelope(
    event_type: str, event_id: str, ts_ns: int, item: dict[str, Any], data: dict[str, Any], span_suffix: str, mode: str
) -> dict[str, Any]:
    res = item.get("resource") or {}
    body: dict[str, Any] = {
        "oisp_version": "0.1",
        "event_id": event_id,
        "event_type": event_type,
        "ts": iso(ts_ns / 1e9) if ts_ns else iso(time.time()),
        "source": {
            "collector": "agentwatch-otlp",
            "capture_method": "sdk_instrumentation",
            "capture_point": str(item.get("scope") or "otlp")[:256],
        },
        "confidence": {
            "level": "high",
            "completeness": "full" if mode == "full" else "redacted",
            "reasons": ["otel_genai_semconv"],
        },
        "data": data,
    }
    if isinstance(res.get("host.name"), str):
        body["host"] = {"hostname": res["host.name"][:256]}
    proc: dict[str, Any] = {}
    if whole(res.get("process.pid")) is not None:
        proc["pid"] = whole(res["process.pid"])
    for src, dst in (
        ("process.executable.name", "name"),
        ("process.executable.path", "exe"),
        ("process.command_line", "cmdline"),
    ):
        if isinstance(res.get(src), str):
            proc[dst] = res[src][:4096]
    if proc:
        body["process"] = proc
    attrs = {
        k: v
        for k, v in res.items()
        if k.startswith(("service.", "telemetry.sdk.")) and isinstance(v, str | int | float | bool)
    }
    if attrs:
        body["attrs"] = attrs
    tid, sid = item.get("trace_id") or "", item.get("span_id") or ""
    if len(tid) == 32 and tid != "0" * 32:
        tc: dict[str, Any] = {"trace_id": tid}
        if len(sid) == 16:
            tc["span_id"] = sid
        if item.get("parent_span_id"):
            tc["parent_span_id"] = item["parent_span_id"]
        body["trace_context"] = tc
    return body


def _base_id(item: dict[str, Any], index: int) -> str:
    tid, sid = item.get("trace_id") or "", item.get("span_id") or ""
    if tid and sid:
        return f"otlp-{tid}-{sid}"
    return f"otlp-{content_hash(orjson.dumps(item, default=str))[7:39]}-{index}"


def _llm_events(
    index: int,
    item: dict[str, Any],
    a: dict[str, Any],
    conv: Conversation,
    start_ns: int,
    end_ns: int,
    error: str | None,
    mode: str,
) -> list[dict[str, Any]]:
    red = Redactor(mode)  # type: ignore[arg-type]
    base = _base_id(item, index)
    raw_provider = str(a.get("gen_ai.provider.name") or a.get("gen_ai.system") or "")[:128]
    provider = oisp_provider(raw_provider)
    op = str(a.get("gen_ai.operation.name") or "chat")
    request_type = {
        "embeddings": "embedding",
        "embedding": "embedding",
        "text_completion": "completion",
        "completion": "completion",
    }.get(op, "chat")
    req: dict[str, Any] = {"request_id": base, "provider": {"name": provider}, "request_type": request_type}
    if isinstance(a.get("server.address"), str):
        req["provider"]["endpoint"] = a["server.address"][:512]
    model = a.get("gen_ai.request.model")
    if isinstance(model, str):
        req["model"] = {"id": model[:256]}
    if isinstance(a.get("gen_ai.conversation.id"), str):
        req["conversation_id"] = a["gen_ai.conversation.id"][:256]
    params = {
        dst: a[src]
        for src, dst in PARAMS.items()
        if isinstance(a.get(src), int | float) and not isinstance(a.get(src), bool) and math.isfinite(a[src])
    }
    if params:
        req["parameters"] = params
    if isinstance(a.get("gen_ai.request.stream"), bool):
        req["streaming"] = a["gen_ai.request.stream"]
    if conv.messages:
        msgs = []
        for m in conv.messages:
            text = m.get("content") or ""
            msgs.append({**m, "content": red.text(text), "content_length": len(text)})
        req["messages"] = msgs
        req["messages_count"] = len(msgs)
        req["has_system_prompt"] = any(m["role"] == "system" for m in conv.messages)
    if conv.tools:
        req["tools"] = [{**t, "type": tool_def_type(t.get("type"))} for t in conv.tools[:256]]
        req["tools_count"] = len(conv.tools)
    req_body = _envelope("ai.request", base + "-req", start_ns, item, req, "req", mode)
    if raw_provider and raw_provider.lower() != provider:
        req_body.setdefault("attrs", {})["gen_ai.provider.name"] = raw_provider
    agent = a.get("gen_ai.agent.name")
    if isinstance(agent, str):
        req_body.setdefault("attrs", {})["agent.name"] = agent[:128]

    resp: dict[str, Any] = {"request_id": base, "provider": dict(req["provider"]), "success": error is None}
    rmodel = a.get("gen_ai.response.model") or model
    if isinstance(rmodel, str):
        resp["model"] = {"id": rmodel[:256]}
    if isinstance(a.get("gen_ai.response.id"), str):
        resp["provider_request_id"] = a["gen_ai.response.id"][:256]
    if start_ns and end_ns >= start_ns:
        resp["latency_ms"] = int((end_ns - start_ns) / 1e6)
    usage: dict[str, int] = {}
    for key, dst in TOKEN_KEYS:
        v = count(a.get(key), attr(key))
        if v is not None and dst not in usage:
            usage[dst] = v
    if "total_tokens" not in usage and "prompt_tokens" in usage and "completion_tokens" in usage:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if usage:
        from agentwatch.capture.cost import PriceTable, price_usage

        price_usage(PriceTable.for_data_dir(None), provider, resp.get("model", {}).get("id"), usage)
        resp["usage"] = usage
    finish = conv.finish or ("tool_calls" if conv.tool_calls else None)
    if error:
        resp["error"] = {"type": "span_error", "message": error[:1000]}
        finish = finish or "error"
    if finish:
        resp["finish_reason"] = finish
    text = "".join(conv.output_text)
    if text or finish:
        resp["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": red.text(text)},
                **({"finish_reason": finish} if finish else {}),
            }
        ]
    calls = []
    for tc in conv.tool_calls:
        args = _args_object(tc.get("arguments"))
        calls.append(
            {
                "id": tc["id"],
                "name": tc["name"],
                "type": "function",
                "arguments": red.value(args),
                "arguments_hash": content_hash(
                    dumps(args, tc.get("source") or "attributes", option=orjson.OPT_SORT_KEYS)
                ),
            }
        )
    if calls:
        resp["tool_calls"] = calls
        resp["tool_calls_count"] = len(calls)
    resp_body = _envelope("ai.response", base + "-resp", end_ns or start_ns, item, resp, "resp", mode)
    resp_body["related_events"] = [{"event_id": req_body["event_id"], "relationship": "parent"}]
    out = [req_body, resp_body]
    for i, c in enumerate(calls):
        data = {
            "tool": {"name": c["name"], "type": tool_type(c["name"])},
            "call_id": c["id"],
            "triggered_by": "llm_decision",
            "arguments": c["arguments"],
            "arguments_hash": c["arguments_hash"],
        }
        tb = _envelope("agent.tool_call", f"{base}-call-{i}", end_ns or start_ns, item, data, "call", mode)
        tb["related_events"] = [{"event_id": resp_body["event_id"], "relationship": "caused_by"}]
        out.append(tb)
    return out


def _tool_events(
    index: int, item: dict[str, Any], a: dict[str, Any], start_ns: int, end_ns: int, error: str | None, mode: str
) -> list[dict[str, Any]]:
    red = Redactor(mode)  # type: ignore[arg-type]
    base = _base_id(item, index)
    name = str(a.get("gen_ai.tool.name") or item.get("name") or "tool")[:256]
    call_id = str(a.get("gen_ai.tool.call.id") or base)[:256]
    args = _args_object(a.get("gen_ai.tool.call.arguments"))
    tool = {"name": name, "type": tool_type(name)}
    if isinstance(a.get("gen_ai.tool.description"), str):
        tool["description"] = a["gen_ai.tool.description"][:1000]
    call = {
        "tool": tool,
        "call_id": call_id,
        "triggered_by": "llm_decision",
        "arguments": red.value(args),
        "arguments_hash": content_hash(dumps(args, attr("gen_ai.tool.call.arguments"), option=orjson.OPT_SORT_KEYS)),
    }
    call_body = _envelope("agent.tool_call", base + "-call", start_ns, item, call, "call", mode)
    result_raw = a.get("gen_ai.tool.call.result")
    result: dict[str, Any] = {"tool": tool, "call_id": call_id, "success": error is None}
    if result_raw is not None:
        text = (
            result_raw if isinstance(result_raw, str) else dumps(result_raw, attr("gen_ai.tool.call.result")).decode()
        )
        result["result"] = red.text(text)
        result["result_hash"] = content_hash(text)
        result["result_size_bytes"] = len(text.encode())
    if error:
        result["error"] = {"type": "tool_error", "message": error[:1000]}
    if start_ns and end_ns >= start_ns:
        result["duration_ms"] = int((end_ns - start_ns) / 1e6)
    result_body = _envelope("agent.tool_result", base + "-result", end_ns or start_ns, item, result, "result", mode)
    result_body["related_events"] = [{"event_id": call_body["event_id"], "relationship": "parent"}]
    return [call_body, result_body]


def _is_genai(a: dict[str, Any]) -> bool:
    return any(k.startswith(("gen_ai.", "llm.")) for k in a)


def map_spans(spans: list[dict[str, Any]], mode: str = "safe") -> list[tuple[int, dict[str, Any]]]:
    """(span index, OISP body) for every event the GenAI spans describe; :class:`ItemError` for a bad span."""
    out: list[tuple[int, dict[str, Any]]] = []
    for index, s in enumerate(spans):
        try:
            check_span(s)
            out += [(index, b) for b in _span_events(index, s, mode)]
        except EventError as exc:
            raise ItemError(index, exc.field, exc.rule) from None
    return out


def _span_events(index: int, s: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    a = s.get("attributes") or {}
    if not _is_genai(a) and not any(str(e.get("name", "")).startswith("gen_ai.") for e in s.get("events") or []):
        return []
    status = s.get("status") or {}
    error = (status.get("message") or "error") if status.get("code") == 2 else None
    op = str(a.get("gen_ai.operation.name") or "")
    start, end = int(s.get("start_ns") or 0), int(s.get("end_ns") or 0)
    if op == "execute_tool" or (not op and "gen_ai.tool.name" in a and "gen_ai.request.model" not in a):
        return _tool_events(index, s, a, start, end, error, mode)
    if op in LLM_OPERATIONS or "gen_ai.request.model" in a or any(k.startswith("gen_ai.prompt.") for k in a):
        conv = Conversation()
        conv.from_attributes(a)
        for i, e in enumerate(s.get("events") or []):
            conv.from_event(str(e.get("name", "")), e.get("attributes") or {}, where=f"events[{i}].attributes")
        return _llm_events(index, s, a, conv, start, end, error, mode)
    return []  # invoke_agent, create_agent...: not an LLM call or a tool call


def map_logs(records: list[dict[str, Any]], mode: str = "safe") -> list[tuple[int, dict[str, Any]]]:
    """GenAI log records grouped per span into one request/response; others are skipped.

    :class:`ItemError` for a bad record (a problem found after grouping names the group's first record).
    """
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, r in enumerate(records):
        try:
            check_log(r)
        except EventError as exc:
            raise ItemError(index, exc.field, exc.rule) from None
        a = r.get("attributes") or {}
        name = r.get("event_name") or a.get("event.name") or ""
        if not (str(name).startswith("gen_ai.") or _is_genai(a)):
            continue
        key = f"{r.get('trace_id')}:{r.get('span_id')}" if r.get("span_id") else f"idx:{index}"
        groups.setdefault(key, []).append((index, r))
    out: list[tuple[int, dict[str, Any]]] = []
    for items in groups.values():
        first_index, first = items[0]
        try:
            out += [(first_index, b) for b in _log_group_events(first_index, first, items, mode)]
        except EventError as exc:
            raise ItemError(first_index, exc.field, exc.rule) from None
    return out


def _log_group_events(
    first_index: int, first: dict[str, Any], items: list[tuple[int, dict[str, Any]]], mode: str
) -> list[dict[str, Any]]:
    attrs: dict[str, Any] = {}
    conv = Conversation()
    times = []
    for _, r in items:
        a = r.get("attributes") or {}
        attrs.update({k: v for k, v in a.items() if k != "event.name"})
        name = str(r.get("event_name") or a.get("event.name") or "")
        conv.from_event(name, a, r.get("body"), where="body")
        if r.get("time_ns"):
            times.append(int(r["time_ns"]))
    conv.from_attributes(attrs)
    item = {**first, "name": "gen_ai.logs"}
    start, end = (min(times), max(times)) if times else (0, 0)
    return _llm_events(first_index, item, attrs, conv, start, end, None, mode)
