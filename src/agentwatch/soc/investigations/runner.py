"""The investigation loop, the same for a live run and a replay: prompt -> model -> tool calls ->
results -> model ..., until the model answers without a tool call (its report), bounded by
``investigations.max_steps`` (calls to the model), ``max_tokens`` and ``max_tool_calls`` (the
caller bounds the wall time). Every step is handed to a :class:`Sink` before the loop goes on:
the live sink is the ledger, whose failure stops the loop.

What differs between a live run and a replay is only the :class:`Backend` (the LLM, or the
recorded answers) and the :class:`Sink` (the ledger, or a list compared with it afterwards).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentwatch.soc.investigations import prompt, report, tools
from agentwatch.soc.investigations.ledger import canonical, digest
from agentwatch.soc.investigations.llm import Turn
from agentwatch.soc.investigations.settings import InvestigationSettings

CHARS_PER_TOKEN = 4  # the estimate when the backend reports no usage


class Backend(Protocol):
    async def ask(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int) -> Turn: ...


class Sink(Protocol):
    async def record(self, kind: str, payload: dict[str, Any]) -> None: ...


class Stopped(Exception):
    """The investigation hit a bound or cannot go on; the message names the setting or the cause."""


@dataclass
class State:
    steps: int = 0
    tokens: int = 0
    model: str = ""
    report: dict[str, Any] | None = None
    shown: list[str] = field(default_factory=list)


def _estimate(messages: list[dict[str, Any]], turn: Turn) -> int:
    """Tokens of a step whose backend reported none: the bytes sent and answered, a token per
    :data:`CHARS_PER_TOKEN` bytes."""
    sent = len(canonical(messages).encode()) + len(canonical(turn.message).encode())
    return sent // CHARS_PER_TOKEN + 1


async def investigate(
    aw: Any,
    settings: InvestigationSettings,
    llm_max_tokens: int,
    case: dict[str, Any],
    nonce: str,
    backend: Backend,
    sink: Sink,
    state: State,
) -> dict[str, Any]:
    """Run the loop; the report. Raises :class:`Stopped` at a bound, and whatever the backend or
    the sink raise."""
    messages = prompt.messages(case, nonce)
    offered = tools.definitions(settings)
    state.shown.append(messages[1]["content"])
    recorded = 0
    for step in range(1, settings.max_steps + 1):
        payload: dict[str, Any] = {"step": step, "messages": messages[recorded:], "message_count": len(messages)}
        if step == 1:
            payload["tools"] = offered
        await sink.record("prompt", payload)
        recorded = len(messages)
        budget = settings.max_tokens - state.tokens
        turn = await backend.ask(messages, offered, max(1, min(llm_max_tokens, budget)))
        state.steps, state.model = step, turn.model
        state.tokens += turn.tokens if turn.tokens is not None else _estimate(messages, turn)
        await sink.record(
            "llm_response",
            {
                "step": step,
                "model": turn.model,
                "message": turn.message,
                "usage": turn.usage,
                "tokens": turn.tokens,
                "finish_reason": turn.finish_reason,
            },
        )
        messages.append(turn.message)
        calls = turn.message.get("tool_calls") or []
        if not calls:
            return await _report(aw, turn.message.get("content") or "", sink, state)
        if state.tokens >= settings.max_tokens:
            raise Stopped(f"investigations.max_tokens: {state.tokens} tokens used, the most is {settings.max_tokens}")
        for index, call in enumerate(calls):
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            await sink.record(
                "tool_call", {"step": step, "index": index, "call_id": call["id"], "name": name, "arguments": arguments}
            )
            if index >= settings.max_tool_calls:
                result = {"error": f"skipped: at most {settings.max_tool_calls} tool calls run per answer"}
            else:
                result = await asyncio.to_thread(tools.run, aw, settings, name, arguments)
            text = canonical(result)
            state.shown.append(text)
            await sink.record(
                "tool_result",
                {
                    "step": step,
                    "index": index,
                    "call_id": call["id"],
                    "name": name,
                    "result": result,
                    "result_hash": digest(result),
                    "chars": len(text),
                    "error": result.get("error") if isinstance(result.get("error"), str) else None,
                },
            )
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
    raise Stopped(f"investigations.max_steps: the model did not report within {settings.max_steps} steps")


async def _report(aw: Any, content: str, sink: Sink, state: State) -> dict[str, Any]:
    shown = "\n".join(state.shown)
    doc, citations = await asyncio.to_thread(report.build, aw.engine, content, shown)
    for cite in citations:
        await sink.record("citation", cite)
    await sink.record("report", doc)
    state.report = doc
    return doc
