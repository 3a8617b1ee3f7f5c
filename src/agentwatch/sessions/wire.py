"""The AOP wire envelope and its payloads, validated and mapped onto one normalized shape.

Two payload dialects are in use: the one the original program and SDK send
(``reasoning``, ``chosen``, ``success``, ``latency_ms``, ``status`` ...) and the
one its documentation describes (``content``, ``decision``, ``outcome``,
``duration_ms``, ``tool_call_id`` ...). Both are accepted; the normalized payload
always uses the documented names, so nothing downstream sees the dialect.

Every problem raises :class:`EventError` naming the field (``payload.confidence``)
and the rule broken; nothing here raises anything else, whatever the JSON input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from agentwatch.events.model import CONTROL_RE, MAX_QUANTITY, EventError, parse_ts

# The protocol's event types (the seed notes say "11" but list these 12).
EVENT_TYPES = (
    "session.started",
    "session.heartbeat",
    "session.ended",
    "cognition.thought",
    "cognition.goal",
    "cognition.decision",
    "cognition.uncertainty",
    "operation.tool_start",
    "operation.tool_end",
    "operation.agent_spawn",
    "operation.memory",
    "operation.external_call",
)
TYPE_PREFIX = "aop."  # canonical event_type = "aop." + AOP type
SPEC_RE = re.compile(r"aop/([0-9]{1,4})\.([0-9]{1,4})(?:\.[0-9]{1,4})?")  # fullmatch; ASCII digits only
SUPPORTED_MAJOR = 1
RFC3339_RE = re.compile(  # fullmatch; ASCII digits only
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
MAX_ID = 128
MAX_TEXT = 64 * 1024  # the whole event is capped at 64 KiB anyway
MAX_SEQUENCE = 2**63 - 1
OUTCOMES = ("completed", "failed", "cancelled", "timeout")
OUTCOME_ALIASES = {
    "completed": "completed",
    "complete": "completed",
    "success": "completed",
    "succeeded": "completed",
    "ok": "completed",
    "done": "completed",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "errored": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "aborted": "cancelled",
    "timeout": "timeout",
    "timed_out": "timeout",
}
TOOL_OK = {"success", "succeeded", "ok", "completed", "complete", "done"}
TOOL_FAILED = {"failure", "failed", "error", "errored", "timeout", "timed_out", "cancelled", "canceled"}
CONFIDENCE_WORDS = ("low", "medium", "high")


# -- field readers ------------------------------------------------------------
def _text(value: Any, field: str, *, limit: int = MAX_TEXT, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise EventError(field, "is required")
        return None
    if not isinstance(value, str):
        raise EventError(field, "must be a string")
    if len(value) > limit:
        raise EventError(field, f"longer than {limit} characters")
    return value


def identifier(value: Any, field: str, *, required: bool = True) -> str | None:
    """Ids: 1-128 characters, no control characters (they end up in headers and file names)."""
    text = _text(value, field, limit=MAX_ID, required=required)
    if text is None:
        return None
    if not text:
        raise EventError(field, "must not be empty")
    if CONTROL_RE.search(text) is not None:
        raise EventError(field, "must not contain control characters")
    return text


def _number(value: Any, field: str, *, minimum: float = 0.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(field, "must be a number")
    if value < minimum:
        raise EventError(field, f"must be >= {minimum:g}")
    if value > MAX_QUANTITY:
        raise EventError(field, f"must be <= {MAX_QUANTITY:g}")
    return float(value)


def _int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(field, "must be an integer")
    if value < 0 or value > MAX_SEQUENCE:
        raise EventError(field, f"must be between 0 and {MAX_SEQUENCE}")
    return value


def _bool(value: Any, field: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise EventError(field, "must be true or false")
    return value


def _either(p: dict[str, Any], *names: str) -> tuple[str, Any]:
    """The first of ``names`` present in the payload (the documented name first)."""
    for name in names:
        if p.get(name) is not None:
            return name, p[name]
    return names[0], None


def _confidence(p: dict[str, Any], low_below: float) -> dict[str, Any]:
    name, value = _either(p, "confidence")
    if value is None:
        return {}
    field = f"payload.{name}"
    if isinstance(value, str):
        word = value.lower()
        if word not in CONFIDENCE_WORDS:
            raise EventError(field, "must be low, medium, high or a number between 0 and 1")
        return {"confidence": value, "confidence_level": word}
    number = _number(value, field)
    if number is None or number > 1:
        raise EventError(field, "must be low, medium, high or a number between 0 and 1")
    level = "low" if number < low_below else ("medium" if number < 0.75 else "high")
    return {"confidence": number, "confidence_level": level}


def _usage(p: dict[str, Any]) -> dict[str, Any]:
    """Per-event token and cost increments (an LLM call inside a thought or tool)."""
    out: dict[str, Any] = {}
    tokens = _number(p.get("tokens"), "payload.tokens")
    cost = _number(p.get("cost_usd"), "payload.cost_usd")
    if tokens is not None:
        out["tokens"] = tokens
    if cost is not None:
        out["cost_usd"] = cost
    return out


def _keep(out: dict[str, Any], **values: Any) -> dict[str, Any]:
    out.update({k: v for k, v in values.items() if v is not None})
    return out


# -- one normalizer per type ----------------------------------------------------
def _started(p: dict[str, Any], _low: float) -> dict[str, Any]:
    return _keep(
        {},
        goal=_text(p.get("goal"), "payload.goal"),
        token_budget=_number(p.get("token_budget"), "payload.token_budget"),
        cost_budget_usd=_number(p.get("cost_budget_usd"), "payload.cost_budget_usd"),
    )


def _heartbeat(p: dict[str, Any], _low: float) -> dict[str, Any]:
    tname, tokens = _either(p, "total_tokens", "token_spend")
    return _keep(
        {},
        step=_int(p.get("step"), "payload.step"),
        total_tokens=_number(tokens, f"payload.{tname}"),
        total_cost_usd=_number(p.get("total_cost_usd"), "payload.total_cost_usd"),
    )


def _ended(p: dict[str, Any], _low: float) -> dict[str, Any]:
    name, value = _either(p, "outcome", "status")
    outcome = "completed"
    if value is not None:
        if not isinstance(value, str) or value.lower() not in OUTCOME_ALIASES:
            raise EventError(f"payload.{name}", f"must be one of {', '.join(OUTCOMES)}")
        outcome = OUTCOME_ALIASES[value.lower()]
    return _keep(
        {"outcome": outcome},
        total_steps=_int(p.get("total_steps"), "payload.total_steps"),
        total_tokens=_number(p.get("total_tokens"), "payload.total_tokens"),
        total_cost_usd=_number(p.get("total_cost_usd"), "payload.total_cost_usd"),
        summary=_text(p.get("summary"), "payload.summary"),
    )


def _thought(p: dict[str, Any], low: float) -> dict[str, Any]:
    name, content = _either(p, "content", "reasoning")
    out = _keep(
        {},
        content=_text(content, f"payload.{name}"),
        next_intent=_text(p.get("next_intent"), "payload.next_intent"),
    )
    return {**out, **_confidence(p, low), **_usage(p)}


def _goal(p: dict[str, Any], _low: float) -> dict[str, Any]:
    name, goal = _either(p, "goal", "content")
    return _keep({}, goal=_text(goal, f"payload.{name}"))


def _decision(p: dict[str, Any], low: float) -> dict[str, Any]:
    name, decision = _either(p, "decision", "chosen")
    alternatives = p.get("alternatives")
    ok = isinstance(alternatives, list) and len(alternatives) <= 100 and all(isinstance(a, str) for a in alternatives)
    if alternatives is not None and not ok:
        raise EventError("payload.alternatives", "must be a list of at most 100 strings")
    rname, reasoning = _either(p, "reasoning", "rationale")
    out = _keep(
        {},
        decision=_text(decision, f"payload.{name}"),
        alternatives=alternatives,
        reasoning=_text(reasoning, f"payload.{rname}"),
    )
    return {**out, **_confidence(p, low)}


def _uncertainty(p: dict[str, Any], low: float) -> dict[str, Any]:
    name, content = _either(p, "content", "reasoning", "reason")
    return {**_keep({}, content=_text(content, f"payload.{name}")), **_confidence(p, low)}


def _tool_start(p: dict[str, Any], _low: float) -> dict[str, Any]:
    return _keep(
        {},
        tool=identifier(p.get("tool"), "payload.tool", required=p.get("tool_call_id") is None),
        tool_call_id=identifier(p.get("tool_call_id"), "payload.tool_call_id", required=False),
        input=p.get("input"),
    )


def _tool_outcome(p: dict[str, Any]) -> bool:
    if p.get("success") is not None:
        return bool(_bool(p["success"], "payload.success"))
    name, value = _either(p, "outcome", "status")
    if value is None:
        return p.get("error") in (None, "", False)
    if isinstance(value, str) and value.lower() in TOOL_OK:
        return True
    if isinstance(value, str) and value.lower() in TOOL_FAILED:
        return False
    raise EventError(f"payload.{name}", "must be success or failure (or error, timeout, cancelled)")


def _tool_end(p: dict[str, Any], _low: float) -> dict[str, Any]:
    tool = identifier(p.get("tool"), "payload.tool", required=False)
    call_id = identifier(p.get("tool_call_id"), "payload.tool_call_id", required=False)
    if tool is None and call_id is None:
        raise EventError("payload.tool", "is required (or payload.tool_call_id naming the tool_start)")
    success = _tool_outcome(p)
    dname, duration = _either(p, "duration_ms", "latency_ms")
    error = p.get("error")
    if error is not None and not isinstance(error, str | dict):
        raise EventError("payload.error", "must be a string or an object")
    out = _keep(
        {"success": success, "outcome": "success" if success else "failure"},
        tool=tool,
        tool_call_id=call_id,
        duration_ms=_number(duration, f"payload.{dname}"),
        output=p.get("output"),
        error=error,
    )
    return {**out, **_usage(p)}


def _spawn(p: dict[str, Any], _low: float) -> dict[str, Any]:
    return _keep(
        {},
        child_session_id=identifier(p.get("child_session_id"), "payload.child_session_id", required=False),
        child_agent_id=identifier(p.get("child_agent_id", p.get("agent_id")), "payload.child_agent_id", required=False),
        task=_text(p.get("task"), "payload.task"),
    )


def _memory(p: dict[str, Any], _low: float) -> dict[str, Any]:
    name, op = _either(p, "operation", "action")
    return _keep(
        {},
        operation=_text(op, f"payload.{name}", limit=64),
        key=_text(p.get("key"), "payload.key", limit=1024),
        content=p.get("content", p.get("value")),
    )


def _external(p: dict[str, Any], _low: float) -> dict[str, Any]:
    name, target = _either(p, "target", "url", "service")
    dname, duration = _either(p, "duration_ms", "latency_ms")
    status = p.get("status_code")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 999):
        raise EventError("payload.status_code", "must be an integer between 0 and 999")
    return {
        **_keep(
            {},
            target=_text(target, f"payload.{name}", limit=2048),
            method=_text(p.get("method"), "payload.method", limit=16),
            status_code=status,
            success=_bool(p.get("success"), "payload.success"),
            duration_ms=_number(duration, f"payload.{dname}"),
        ),
        **_usage(p),
    }


NORMALIZERS: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
    "session.started": _started,
    "session.heartbeat": _heartbeat,
    "session.ended": _ended,
    "cognition.thought": _thought,
    "cognition.goal": _goal,
    "cognition.decision": _decision,
    "cognition.uncertainty": _uncertainty,
    "operation.tool_start": _tool_start,
    "operation.tool_end": _tool_end,
    "operation.agent_spawn": _spawn,
    "operation.memory": _memory,
    "operation.external_call": _external,
}


def normalize_payload(aop_type: str, payload: Any, low_confidence_below: float = 0.4) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise EventError("payload", "must be a JSON object")
    return NORMALIZERS[aop_type](payload, low_confidence_below)


# -- the envelope ----------------------------------------------------------------
def check_envelope(doc: Any) -> tuple[dict[str, Any], float]:
    """Validate the AOP envelope; returns (the fields we use, event time in epoch seconds)."""
    if not isinstance(doc, dict):
        raise EventError("event", "must be a JSON object")
    spec = doc.get("spec")
    if spec is None:
        raise EventError("spec", "is required")
    if not isinstance(spec, str):
        raise EventError("spec", "must be a string like 'aop/1.0'")
    m = SPEC_RE.fullmatch(spec)
    if m is None:
        raise EventError("spec", "must look like 'aop/1.0'")
    if int(m.group(1)) != SUPPORTED_MAJOR:
        raise EventError("spec", f"major version {m.group(1)} is not supported (this collector speaks aop/1.x)")
    aop_type = doc.get("type")
    if aop_type is None:
        raise EventError("type", "is required")
    if not isinstance(aop_type, str) or aop_type not in NORMALIZERS:
        raise EventError("type", f"must be one of {', '.join(EVENT_TYPES)}")
    session_id = identifier(doc.get("session_id"), "session_id")
    agent_id = identifier(doc.get("agent_id"), "agent_id")
    parent = identifier(doc.get("parent_session_id"), "parent_session_id", required=False)
    if parent is not None and parent == session_id:
        raise EventError("parent_session_id", "must differ from session_id")
    version = _text(doc.get("agent_version"), "agent_version", limit=64)
    sequence = doc.get("sequence")
    if sequence is None:
        raise EventError("sequence", "is required")
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        raise EventError("sequence", "must be an integer")
    if sequence < 0 or sequence > MAX_SEQUENCE:
        raise EventError("sequence", f"must be between 0 and {MAX_SEQUENCE}")
    stamp = doc.get("timestamp")
    if stamp is None:
        raise EventError("timestamp", "is required")
    if not isinstance(stamp, str) or len(stamp) > 40 or RFC3339_RE.fullmatch(stamp) is None:
        raise EventError("timestamp", "must be an RFC 3339 date-time with a time zone (2026-04-03T10:00:00Z)")
    ts = parse_ts(stamp, "timestamp")
    if "payload" not in doc:
        raise EventError("payload", "is required")
    fields = {
        "spec": spec,
        "type": aop_type,
        "session_id": session_id,
        "parent_session_id": parent,
        "agent_id": agent_id,
        "agent_version": version,
        "sequence": sequence,
        "timestamp": stamp,
    }
    return fields, ts
