"""A one-line summary of a ledger entry, shown in a case's list of entries (the full payload is
``GET /api/v1/investigations/{entry id}``)."""

from __future__ import annotations

from typing import Any

from agentwatch.alerts.explain_prompt import clip

SUMMARY_CHARS = 200


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def summary(kind: str, payload: dict[str, Any]) -> str:
    if not isinstance(payload, dict):
        return ""
    step = payload.get("step")
    if kind == "prompt":
        return f"step {step}: {len(payload.get('messages') or [])} message(s) sent to the model"
    if kind == "llm_response":
        message = payload.get("message")
        message = message if isinstance(message, dict) else {}  # a changed entry: ledger.verify reports it
        listed = message.get("tool_calls")
        functions = [c.get("function") for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        calls = [f.get("name") for f in functions if isinstance(f, dict)]
        if calls:
            return f"step {step}: the model called {', '.join(str(n) for n in calls)}"
        return f"step {step}: " + clip(_text(message.get("content")), SUMMARY_CHARS)
    if kind == "tool_call":
        return f"step {step}: {payload.get('name')}({clip(_text(payload.get('arguments')), SUMMARY_CHARS)})"
    if kind == "tool_result":
        state = f"error: {payload.get('error')}" if payload.get("error") else f"{payload.get('chars')} characters"
        return f"step {step}: {payload.get('name')} -> {clip(state, SUMMARY_CHARS)}"
    if kind == "citation":
        exists = "exists" if payload.get("exists") else "DOES NOT EXIST"
        return f"finding {payload.get('finding')}: {payload.get('type')} {payload.get('id')} {exists}"
    if kind == "report":
        return clip(_text(payload.get("summary")), SUMMARY_CHARS)
    if kind == "failure":
        return clip(_text(payload.get("error")), SUMMARY_CHARS)
    return ""
