"""Canonical field accessors: how a rule's field name reads a value out of an Event.

Two kinds of canonical field exist:

- **paths** into the OISP envelope (``process.exe``, ``data.dest.ip``, ``actor.user``,
  ``data.attrs.Image`` for raw-record fields); a path walks nested mappings and
  returns ``MISSING`` when a step is absent;
- **named accessors** for agent content that has no single path (``user_input``,
  ``llm_output``, ``tool_args`` ...), derived from the event's payload according to its
  event type. ATR-style rules and agentwatch's own pack use these names.

A value may be a scalar or a list (any element may match, as in Sigma).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from agentwatch.events.model import Event


class _Missing:
    """The field is absent from the event (distinct from a present ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

Getter = Callable[[Event], Any]

# Top-level names of the canonical event that a path may start with.
ENVELOPE_ROOTS = frozenset(
    {
        "data",
        "process",
        "actor",
        "host",
        "source",
        "confidence",
        "app",
        "web_context",
        "related_events",
        "event_type",
        "event_id",
        "ts",
        "session_id",
        "parent_session_id",
        "sequence",
        "agent",
        "severity",
        "oisp_version",
    }
)


def path_getter(path: str) -> Getter:
    """A getter that walks ``a.b.c`` through nested mappings of the event body."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        key = parts[0]

        def get1(event: Event) -> Any:
            return event.body.get(key, MISSING)

        return get1
    if len(parts) == 2:
        a, b = parts

        def get2(event: Event) -> Any:
            node = event.body.get(a)
            if type(node) is not dict:
                return MISSING
            return node.get(b, MISSING)

        return get2

    def getn(event: Event) -> Any:
        node: Any = event.body
        for part in parts:
            if type(node) is not dict:
                return MISSING
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        return node

    return getn


def first_of(*getters: Getter) -> Getter:
    """The first getter whose value is present (canonical path, then raw-record fallback)."""

    def get(event: Event) -> Any:
        for getter in getters:
            value = getter(event)
            if value is not MISSING:
                return value
        return MISSING

    return get


def _text(content: Any) -> str | None:
    """Text of an OpenAI/Anthropic-style message content (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text") or part.get("content")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts) if parts else None
    return None


def _dump(value: Any) -> str | None:
    if value is None or value is MISSING:
        return None
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return str(value)


def _messages(event: Event, roles: frozenset[str] | None) -> Any:
    messages = event.data.get("messages")
    if not isinstance(messages, list):
        return MISSING
    out = []
    for message in messages:
        if isinstance(message, dict) and (roles is None or message.get("role") in roles):
            text = _text(message.get("content"))
            if text is not None:
                out.append(text)
    return out if out else MISSING


def _plain(event: Event, key: str) -> Any:
    value = event.data.get(key, MISSING)
    return value if value is not MISSING else MISSING


def user_input(event: Event) -> Any:
    """What a human (or an upstream caller) typed: user messages of an LLM request."""
    value = _messages(event, frozenset({"user"}))
    if value is MISSING:
        value = _plain(event, "user_input")
    if value is MISSING and event.event_type == "agent.session":
        value = event.data.get("task_description", MISSING)
    return value


def system_prompt(event: Event) -> Any:
    value = _messages(event, frozenset({"system", "developer"}))
    return _plain(event, "system_prompt") if value is MISSING else value


def llm_input(event: Event) -> Any:
    """Every message of an LLM request, whatever its role (prompt text as sent)."""
    value = _messages(event, None)
    return _plain(event, "prompt") if value is MISSING else value


def llm_output(event: Event) -> Any:
    """Generated text of an LLM response (choices, streaming deltas, or ``data.output``)."""
    data = event.data
    out: list[str] = []
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            text = _text(message.get("content")) if isinstance(message, dict) else _text(choice.get("text"))
            if text:
                out.append(text)
    delta = data.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        out.append(delta["content"])
    if not out:
        for key in ("output", "content", "completion"):
            text = _text(data.get(key))
            if text:
                out.append(text)
    return out if out else MISSING


def _tool_calls(event: Event) -> list[dict]:
    calls = event.data.get("tool_calls")
    if not isinstance(calls, list):
        delta = event.data.get("delta")
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def tool_name(event: Event) -> Any:
    tool = event.data.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("name"), str):
        return tool["name"]
    names = [c["name"] for c in _tool_calls(event) if isinstance(c.get("name"), str)]
    if names:
        return names
    tools = event.data.get("tools")
    if isinstance(tools, list):
        names = [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
        return names or MISSING
    return MISSING


def tool_args(event: Event) -> Any:
    """Arguments of a tool call as JSON text (sorted keys) so string rules can match them."""
    if "arguments" in event.data:
        return _dump(event.data.get("arguments")) or MISSING
    args = [_dump(c.get("arguments")) for c in _tool_calls(event)]
    args = [a for a in args if a]
    return args if args else MISSING


def tool_response(event: Event) -> Any:
    """What a tool returned to the agent (``agent.tool_result`` result, or ``data.output``)."""
    if "result" in event.data:
        return _dump(event.data.get("result")) or MISSING
    if event.event_type == "agent.tool_result":
        return _dump(event.data.get("output")) or MISSING
    return MISSING


def tool_description(event: Event) -> Any:
    tool = event.data.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("description"), str):
        return tool["description"]
    tools = event.data.get("tools")
    if isinstance(tools, list):
        out = []
        for t in tools:
            if not isinstance(t, dict):
                continue
            desc = t.get("description")
            if desc is None and isinstance(t.get("function"), dict):
                desc = t["function"].get("description")
            if isinstance(desc, str):
                out.append(desc)
        return out if out else MISSING
    return MISSING


def retrieved_content(event: Event) -> Any:
    """Documents a RAG step returned (``agent.rag_retrieve`` results)."""
    results = event.data.get("results")
    if not isinstance(results, list):
        return MISSING
    out = []
    for item in results:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            text = _text(item.get("content")) or _text(item.get("text"))
            if text:
                out.append(text)
    return out if out else MISSING


def content(event: Event) -> Any:
    """Every agent text field at once: what any prompt-injection style rule inspects."""
    out: list[str] = []
    for getter in (user_input, llm_input, llm_output, tool_args, tool_response, tool_description, retrieved_content):
        value = getter(event)
        if value is MISSING:
            continue
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
        elif isinstance(value, str):
            out.append(value)
    return list(dict.fromkeys(out)) if out else MISSING


def _agent_name(event: Event) -> Any:
    if event.agent:
        return event.agent
    agent = event.data.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("name"), str):
        return agent["name"]
    return MISSING


def _model(event: Event) -> Any:
    model = event.data.get("model")
    if isinstance(model, dict):
        return model.get("id", model.get("name", MISSING))
    return model if isinstance(model, str) else MISSING


def _provider(event: Event) -> Any:
    provider = event.data.get("provider")
    if isinstance(provider, dict):
        return provider.get("name", MISSING)
    return provider if isinstance(provider, str) else MISSING


def _keywords(event: Event) -> Any:
    """Values an unnamed-field (keyword) search looks at: the raw record, the command line, the texts."""
    out: list[str] = []
    attrs = event.data.get("attrs")
    if isinstance(attrs, dict):
        out.extend(str(v) for v in attrs.values() if isinstance(v, (str, int, float)) and not isinstance(v, bool))
    for key in ("message", "msg", "line"):
        value = event.data.get(key)
        if isinstance(value, str):
            out.append(value)
    cmdline = event.process.get("cmdline")
    if isinstance(cmdline, str):
        out.append(cmdline)
    text = content(event)
    if text is not MISSING:
        out.extend(text)
    return out if out else MISSING


def _initiated(event: Event) -> Any:
    """Sysmon's ``Initiated``: "true" for an outbound connection, "false" for an accepted one."""
    if event.event_type == "network.connect":
        return "true"
    if event.event_type == "network.accept":
        return "false"
    return MISSING


# name -> (getter, one-line description); the names rules may use directly.
NAMED: dict[str, tuple[Getter, str]] = {
    "user_input": (user_input, "user messages of an LLM request (or data.user_input)"),
    "system_prompt": (system_prompt, "system/developer messages of an LLM request"),
    "llm_input": (llm_input, "all messages of an LLM request"),
    "llm_output": (llm_output, "generated text of an LLM response"),
    "tool_name": (tool_name, "tool called (agent.tool_call/result) or tool calls of a response"),
    "tool_args": (tool_args, "tool call arguments as sorted JSON text"),
    "tool_response": (tool_response, "what a tool returned (agent.tool_result)"),
    "tool_description": (tool_description, "tool description(s): MCP tool listing or request tools"),
    "retrieved_content": (retrieved_content, "documents returned by a RAG retrieval"),
    "content": (content, "every agent text field above"),
    "agent_name": (_agent_name, "agent name (envelope agent or data.agent.name)"),
    "model": (_model, "model id of an LLM request/response"),
    "provider": (_provider, "provider name of an LLM request/response"),
    "initiated": (_initiated, "true for network.connect, false for network.accept (Sysmon Initiated)"),
    "keywords": (_keywords, "the values a keyword (unnamed-field) search inspects"),
}
