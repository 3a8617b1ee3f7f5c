"""What an agent-threat rule sees of a canonical Event.

ATR rules name logical fields (``user_input``, ``tool_response``, ``tool_args``,
``tool_description``, ``agent_output``, ``content``...). One canonical event can
carry several of them at once (an LLM request holds the user's words, earlier
tool results and the tool catalogue), so an event becomes a few *views*, each
with a kind and the fields of that kind. A rule fires on an event when it fires
on any of its views. Field resolution follows the ATR reference engine so a
rule's embedded test cases mean the same thing here as there.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentwatch.events.model import Event

MAX_TEXT = 64 * 1024  # characters of one field looked at by rules
# Characters that render as nothing (Unicode Default_Ignorable: zero-width spaces and joiners,
# soft hyphen, invisible operators, variation selectors, tag characters) and every bidi control
# (incl. U+061C): put inside a keyword they hide it from a pattern but not from the model.
INVISIBLE = "\u00ad\u034f\u061c\ufeff" + "".join(
    chr(c)
    for start, end in (
        (0x17B4, 0x17B5),
        (0x180B, 0x180F),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x206F),
        (0xFE00, 0xFE0F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0000, 0xE007F),
        (0xE0100, 0xE01EF),
    )
    for c in range(start, end + 1)
)
STRIP_INVISIBLE = {ord(c): None for c in INVISIBLE}

# kind -> the field that ``content`` stands for (as in the ATR reference engine)
KIND_FIELD = {
    "llm_input": "user_input",
    "llm_output": "agent_output",
    "tool_call": "tool_args",
    "tool_response": "tool_response",
    "multi_agent_message": "agent_message",
}
ALIASES = {
    "user_input": "llm_input",
    "agent_output": "llm_output",
    "tool_response": "tool_response",
    "agent_message": "multi_agent_message",
}


@dataclass(frozen=True)
class View:
    kind: str
    content: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str | None:
        """The text a condition on ``name`` is matched against, None when absent."""
        if name in self.fields:
            return self.fields[name]
        if name == "content" or name == KIND_FIELD.get(self.kind):
            return self.content or None
        if name in ALIASES:
            return self.content or None if self.kind == ALIASES[name] else None
        if name in ("tool_name", "tool_args") and self.kind == "tool_call":
            return self.content or None
        return None


def candidate_fields(kind: str) -> frozenset[str]:
    """Field names that can resolve on a view of ``kind`` besides its own ``fields``."""
    names = {"content"}
    if kind in KIND_FIELD:
        names.add(KIND_FIELD[kind])
    names.update(name for name, k in ALIASES.items() if k == kind)
    if kind == "tool_call":
        names.update(("tool_name", "tool_args"))
    return frozenset(names)


def normalize(text: str) -> str:
    """NFC and no zero-width or bidi control characters (hidden-text evasion)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text).translate(STRIP_INVISIBLE)


def text_of(value: Any) -> str:
    """A field value as text: strings as they are, structures as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:MAX_TEXT]
    try:
        return orjson.dumps(value).decode()[:MAX_TEXT]
    except TypeError:
        return str(value)[:MAX_TEXT]


def _message_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # provider-native content parts
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(parts)
    return ""


def _join(parts: list[str]) -> str:
    return "\n".join(p for p in parts if p)[:MAX_TEXT]


def _tool(data: dict[str, Any]) -> dict[str, Any]:
    t = data.get("tool")
    return t if isinstance(t, dict) else {}


def views_of(event: Event) -> list[View]:
    """The views of one event (empty for events no agent-threat rule looks at)."""
    data = event.data
    t = event.event_type
    out: list[View] = []
    if t == "ai.request":
        messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
        if messages:
            user = _join([_message_text(m) for m in messages if m.get("role") == "user"])
            tool_text = _join([_message_text(m) for m in messages if m.get("role") in ("tool", "function")])
            system = _join([_message_text(m) for m in messages if m.get("role") == "system"])
            if user:
                out.append(View("llm_input", user, {"user_input": user, "system_prompt": system} if system else {}))
            if tool_text:
                out.append(View("tool_response", tool_text))
        for tool in data.get("tools") or []:
            if isinstance(tool, dict):
                fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
                desc = text_of(fn.get("description"))
                if desc:
                    out.append(
                        View("tool_description", desc, {"tool_description": desc, "tool_name": text_of(fn.get("name"))})
                    )
    elif t == "ai.response":
        texts: list[str] = []
        for choice in data.get("choices") or []:
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                texts.append(_message_text(choice["message"]))
                for call in choice["message"].get("tool_calls") or []:
                    out.extend(_call_view(call))
        text = _join(texts)
        if text:
            out.insert(0, View("llm_output", text))
        for call in data.get("tool_calls") or []:
            out.extend(_call_view(call))
    elif t == "agent.tool_call":
        tool = _tool(data)
        args = text_of(data.get("arguments"))
        name = text_of(tool.get("name"))
        out.append(View("tool_call", args, {"tool_name": name, "tool_args": args}))
        desc = text_of(tool.get("description"))
        if desc:
            out.append(View("tool_description", desc, {"tool_description": desc, "tool_name": name}))
    elif t == "agent.tool_result":
        result = text_of(data.get("result"))
        if not result and isinstance(data.get("error"), dict):
            result = text_of(data["error"].get("message"))
        if result:
            out.append(View("tool_response", result, {"tool_name": text_of(_tool(data).get("name"))}))
    elif t == "agent.rag_retrieve":
        previews = [
            text_of(r.get("content_preview") or r.get("content"))
            for r in data.get("results") or []
            if isinstance(r, dict)
        ]
        text = _join(previews)
        if text:
            out.append(View("tool_response", text, {"retrieved_content": text}))
    elif t.startswith("file."):
        path = data.get("path")
        if not isinstance(path, str) and isinstance(data.get("file"), dict):
            path = data["file"].get("path")
        if isinstance(path, str) and path:
            out.append(View("file", path[:MAX_TEXT], {"file_path": path[:MAX_TEXT]}))
    elif t == "process.exec":
        cmd = text_of(data.get("cmdline") or event.process.get("cmdline") or data.get("exe"))
        if cmd:
            out.append(View("process", cmd, {"command_line": cmd}))
    return out


def _call_view(call: Any) -> list[View]:
    if not isinstance(call, dict):
        return []
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    args = text_of(fn.get("arguments"))
    return [View("tool_call", args, {"tool_name": text_of(fn.get("name")), "tool_args": args})]


def view_of_case(case: dict[str, Any]) -> View:
    """The view of one ATR embedded test case (``input``, ``tool_response``, ``content``, ...)."""
    fields: dict[str, str] = {}
    kind, content = "llm_input", ""
    if "tool_response" in case:
        kind, content = "tool_response", str(case["tool_response"])
        fields["tool_response"] = content
    elif "input" in case:
        content = str(case["input"])
        fields["user_input"] = content
    elif "content" in case:
        content = str(case["content"])
    if "tool_name" in case:
        fields["tool_name"] = str(case["tool_name"])
        if kind == "llm_input" and "input" not in case:
            kind = "tool_call"
    if "tool_args" in case:
        fields["tool_args"] = str(case["tool_args"])
        if kind == "llm_input" and "input" not in case:
            kind = "tool_call"
    if "tool_description" in case:
        fields["tool_description"] = str(case["tool_description"])
    return View(kind, content, fields)
