"""What a baseline learns from one event: its sources and its templates.

Sources say where activity comes from: the event type (``type:agent.tool_call``), the wire
format it arrived in (``format:aop``) and the agent that produced it (``agent:claude-code``).
Templates say what the activity is: the tool called (``tool:run_shell``), the LLM model asked
(``model:gpt-4o``) and the process run (``process:curl``, the program's base name). Each value
is cut to :data:`MAX_VALUE` characters so one odd event cannot grow a baseline's memory.
"""

from __future__ import annotations

from typing import Any

from agentwatch.events.model import Event

MAX_VALUE = 128


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value[:MAX_VALUE]
    return None


def _named(value: Any, key: str) -> str | None:
    """``value`` itself when it is text, else its ``key`` field (``{"name": ...}``, ``{"id": ...}``)."""
    if isinstance(value, dict):
        return _text(value.get(key))
    return _text(value)


def sources(event: Event) -> list[str]:
    out = [f"type:{event.event_type[:MAX_VALUE]}", f"format:{event.source_format[:MAX_VALUE]}"]
    if event.agent:
        out.append(f"agent:{event.agent[:MAX_VALUE]}")
    return out


def templates(event: Event) -> list[str]:
    data = event.data
    out: list[str] = []
    tool = _named(data.get("tool"), "name")
    if tool:
        out.append(f"tool:{tool}")
    model = _named(data.get("model"), "id")
    if model:
        out.append(f"model:{model}")
    proc = event.process
    name = _text(proc.get("name"))
    if name is None:
        exe = _text(proc.get("exe"))
        name = exe.rsplit("/", 1)[-1] or None if exe else None
    if name:
        out.append(f"process:{name}")
    return out
