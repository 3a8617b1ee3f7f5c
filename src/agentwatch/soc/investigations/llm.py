"""One call to the configured OpenAI-compatible backend (``[llm]``) with tools: the messages and
the tool definitions go out, the assistant's message (text and/or ``tool_calls``) comes back.

The call itself is :func:`agentwatch.alerts.explain.post_chat` (the SSRF guard's client, redirects
never followed, ``llm.timeout_s``, a bounded answer); errors are
:class:`~agentwatch.alerts.explain.LlmUnavailable` (may not be asked) and
:class:`~agentwatch.alerts.explain.LlmFailed` (asked, failed), never holding the api key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from agentwatch.alerts.explain import LlmFailed, LlmUnavailable, post_chat

if TYPE_CHECKING:
    from agentwatch.config import LlmSettings

MAX_TOOL_CALLS = 64  # tool calls read from one answer (the investigator runs fewer)
MAX_CALL_ID = 128
MAX_NAME = 64
MAX_ARGUMENTS = 16 * 1024
TEMPERATURE = 0.0


@dataclass
class Turn:
    """The assistant's answer: its message as recorded (``content``, ``tool_calls``), the model
    that answered, the tokens it reports (or None) and why it stopped."""

    message: dict[str, Any]
    model: str
    tokens: int | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


def missing_setting(llm: LlmSettings) -> str | None:
    """Why the backend may not be asked, naming the setting; None when it may."""
    if not llm.enabled:
        return "llm.enabled: is false (set llm.enabled, llm.base_url and llm.model to run investigations)"
    if not llm.base_url:
        return "llm.base_url: not set (the investigator needs an OpenAI-compatible backend)"
    if not llm.model:
        return "llm.model: not set (the investigator needs a model id)"
    return None


async def chat(llm: LlmSettings, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int) -> Turn:
    why = missing_setting(llm)
    if why is not None:
        raise LlmUnavailable(why)
    body = {
        "model": llm.model,
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": max_tokens,
        "temperature": TEMPERATURE,
        "stream": False,
    }
    return parse_turn(await post_chat(llm, body), llm.model or "")


def _tool_call(i: int, call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        raise LlmFailed(f"llm: tool_calls[{i}] has no function")
    call_id, name, arguments = call.get("id"), fn.get("name"), fn.get("arguments")
    if not isinstance(call_id, str) or not 0 < len(call_id) <= MAX_CALL_ID:
        raise LlmFailed(f"llm: tool_calls[{i}].id must be text of 1-{MAX_CALL_ID} characters")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise LlmFailed(f"llm: tool_calls[{i}].function.name must be text of 1-{MAX_NAME} characters")
    if isinstance(arguments, dict):  # some backends send the object itself
        arguments = orjson.dumps(arguments).decode()
    if arguments is None:
        arguments = "{}"
    if not isinstance(arguments, str) or len(arguments) > MAX_ARGUMENTS:
        raise LlmFailed(
            f"llm: tool_calls[{i}].function.arguments must be JSON text of at most {MAX_ARGUMENTS} characters"
        )
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def counted_tokens(usage: dict[str, int]) -> int | None:
    """The tokens an answer counts against ``investigations.max_tokens``: the larger of the
    reported total and prompt + completion (a backend reporting a total of 0 beside large parts
    does not spend less). None when nothing above 0 is reported: the caller estimates then, as
    an answer never costs nothing."""
    parts = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    tokens = max(usage.get("total_tokens", 0), parts)
    return tokens if tokens > 0 else None


def parse_turn(raw: bytes, asked_model: str) -> Turn:
    """The backend's answer as a :class:`Turn`; :class:`LlmFailed` naming what is wrong."""
    try:
        doc = orjson.loads(raw)
        message = doc["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise LlmFailed("llm: the answer has no choices[0].message") from None
    if not isinstance(message, dict):
        raise LlmFailed("llm: choices[0].message is not an object")
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if content is not None and not isinstance(content, str):
        raise LlmFailed("llm: choices[0].message.content is not text")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise LlmFailed("llm: choices[0].message.tool_calls is not a list")
    if len(calls) > MAX_TOOL_CALLS:
        raise LlmFailed(f"llm: more than {MAX_TOOL_CALLS} tool calls in one answer")
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        out["tool_calls"] = [_tool_call(i, c) for i, c in enumerate(calls)]
    elif not (content or "").strip():
        raise LlmFailed("llm: the answer has neither content nor tool calls")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    usage = {
        k: v
        for k, v in usage.items()
        if k in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(v, int) and v >= 0
    }
    tokens = counted_tokens(usage)
    model = doc.get("model")
    finish = doc["choices"][0].get("finish_reason") if isinstance(doc["choices"][0], dict) else None
    return Turn(
        message=out,
        model=model if isinstance(model, str) and 0 < len(model) <= 256 else asked_model,
        tokens=tokens,
        finish_reason=finish if isinstance(finish, str) and len(finish) <= 64 else None,
        usage=usage,
    )
