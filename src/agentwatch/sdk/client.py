"""AOP clients for agents: one set of reporting methods, a sync and an async flavour.

Every reporting method builds one AOP event and hands it, encoded, to the shared
:class:`~agentwatch.sdk.transport.Transport` queue; it returns at once, never does
network I/O and never raises (a bad argument is logged, and the event dropped and
counted in ``stats["dropped"]``), so the same methods serve sync and async agents.
The two flavours differ only in how they flush and close: :class:`AopClient` blocks
(up to its timeout), :class:`AsyncAopClient` awaits without blocking the event loop.
In the child of ``os.fork()`` a client reports as a new session, the child of the one
it was forked from (see :meth:`_Session.after_fork_in_child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from agentwatch.sdk import forking
from agentwatch.sdk.encoding import safe_text
from agentwatch.sdk.transport import Transport

log = logging.getLogger("agentwatch.sdk")
SPEC = "aop/1.0"
F = TypeVar("F", bound=Callable[..., Any])
MAX_OPEN_CALLS = 10_000  # tool calls remembered between tool_start and tool_end


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


class _Session:
    """The reporting methods of one agent session (shared by both flavours)."""

    def __init__(
        self,
        agent_id: str,
        *,
        url: str = "http://127.0.0.1:7777",
        session_id: str | None = None,
        parent_session_id: str | None = None,
        agent_version: str | None = None,
        transport: Transport | None = None,
        **transport_options: Any,
    ) -> None:
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.session_id = session_id or f"sess_{uuid.uuid4().hex}"
        self.parent_session_id = parent_session_id
        if transport is not None and not isinstance(transport, Transport):
            # e.g. an httpx transport meant for Transport(transport=...): every report would be lost
            raise ValueError("transport: must be an agentwatch.sdk.Transport (the one another client shares)")
        self.transport = transport or Transport(url, **transport_options)
        self._owns_transport = transport is None
        self._seq = itertools.count(1)
        # re-entrant: a logging handler that reports to agentwatch may emit from inside emit
        self._seq_lock = threading.RLock()
        self._calls: dict[str, tuple[str, float]] = {}
        self._calls_lock = threading.Lock()  # agents may start and end tools from several threads
        forking.renew_in_child(self)

    def after_fork_in_child(self) -> None:
        """In the child of ``os.fork()``: go on as a new session whose parent is the one forked
        from. Both processes would otherwise number their events from the same point in one
        session, and the collector keeps only the first event of each ``(session_id, sequence)``.
        The locks are new too: one held by a thread of the parent would stay held for ever."""
        self.parent_session_id = self.session_id
        self.session_id = f"sess_{uuid.uuid4().hex}"
        self._seq = itertools.count(1)
        self._seq_lock = threading.RLock()
        self._calls_lock = threading.Lock()

    # -- the core --------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """The transport's counters: sent, replayed, spilled, rejected, dropped (of which
        spill_full: dropped because the spill file was full, and spill_failed: because writing it
        failed) and spill_malformed (lines of a spill file skipped on replay, being no JSON event).
        In a forked child, the child's own."""
        return dict(self.transport.stats)

    def emit(self, event_type: str, payload: dict[str, Any] | None = None) -> None:
        """Queue one AOP event of this session (any of the protocol's types)."""
        try:
            body = _clean(payload or {})
            # one lock around numbering, stamping and queueing: whichever thread reports, the
            # collector receives a session's events in sequence order, their times in step
            with self._seq_lock:
                event = {
                    "spec": SPEC,
                    "session_id": self.session_id,
                    "parent_session_id": self.parent_session_id,
                    "agent_id": self.agent_id,
                    "sequence": next(self._seq),
                    "timestamp": _now(),
                    "type": event_type,
                    "payload": body,
                }
                if self.agent_version:
                    event["agent_version"] = self.agent_version
                self.transport.put(event)
        except Exception:
            log.exception("agentwatch sdk: could not report %s", safe_text(event_type, 100))
            with contextlib.suppress(Exception):
                self.transport.count("dropped")

    # -- session ---------------------------------------------------------------
    def session_started(self, goal: str | None = None, **extra: Any) -> None:
        self.emit("session.started", {"goal": goal, **extra})

    def heartbeat(
        self, step: int | None = None, total_tokens: float | None = None, total_cost_usd: float | None = None
    ) -> None:
        self.emit("session.heartbeat", {"step": step, "total_tokens": total_tokens, "total_cost_usd": total_cost_usd})

    def session_ended(
        self,
        outcome: str = "completed",
        *,
        total_steps: int | None = None,
        total_tokens: float | None = None,
        total_cost_usd: float | None = None,
        summary: str | None = None,
    ) -> None:
        self.emit(
            "session.ended",
            {
                "outcome": outcome,
                "total_steps": total_steps,
                "total_tokens": total_tokens,
                "total_cost_usd": total_cost_usd,
                "summary": summary,
            },
        )

    # -- cognition ---------------------------------------------------------------
    def thought(
        self,
        content: str,
        *,
        confidence: str | float | None = None,
        next_intent: str | None = None,
        tokens: float | None = None,
        cost_usd: float | None = None,
    ) -> None:
        self.emit(
            "cognition.thought",
            {
                "content": content,
                "confidence": confidence,
                "next_intent": next_intent,
                "tokens": tokens,
                "cost_usd": cost_usd,
            },
        )

    def goal(self, goal: str) -> None:
        self.emit("cognition.goal", {"goal": goal})

    def decision(
        self,
        decision: str,
        *,
        alternatives: list[str] | None = None,
        reasoning: str | None = None,
        confidence: str | float | None = None,
    ) -> None:
        self.emit(
            "cognition.decision",
            {"decision": decision, "alternatives": alternatives, "reasoning": reasoning, "confidence": confidence},
        )

    def uncertainty(self, content: str, *, confidence: str | float | None = None) -> None:
        self.emit("cognition.uncertainty", {"content": content, "confidence": confidence})

    # -- operations ----------------------------------------------------------------
    def tool_start(self, tool: str, input: Any = None) -> str:  # noqa: A002  (the protocol's name)
        """Report a tool call; returns its call id for :meth:`tool_end`."""
        call_id = f"call_{uuid.uuid4().hex[:16]}"
        try:
            with self._calls_lock:
                self._calls[call_id] = (tool, time.monotonic())
                if len(self._calls) > MAX_OPEN_CALLS:
                    self._calls.pop(next(iter(self._calls)))
        except Exception:
            log.exception("agentwatch sdk: could not remember tool call %s", call_id)
        self.emit("operation.tool_start", {"tool": tool, "tool_call_id": call_id, "input": input})
        return call_id

    def tool_end(
        self,
        call_id: str,
        *,
        success: bool = True,
        output: Any = None,
        error: str | None = None,
        duration_ms: float | None = None,
        tokens: float | None = None,
        cost_usd: float | None = None,
    ) -> None:
        try:
            with self._calls_lock:
                tool, started = self._calls.pop(call_id, (None, None))
        except Exception:  # an unhashable call id: reported as given, not raised
            tool, started = None, None
        if duration_ms is None and started is not None:
            duration_ms = round((time.monotonic() - started) * 1000, 3)
        self.emit(
            "operation.tool_end",
            {
                "tool": tool,
                "tool_call_id": call_id,
                "outcome": "success" if success else "failure",
                "output": output,
                "error": error,
                "duration_ms": duration_ms,
                "tokens": tokens,
                "cost_usd": cost_usd,
            },
        )

    def agent_spawn(self, agent_id: str, *, task: str | None = None, session_id: str | None = None) -> _Session:
        """Report a sub-agent and return its client (same flavour, same transport, child session)."""
        child = type(self)(
            agent_id,
            session_id=session_id,
            parent_session_id=self.session_id,
            agent_version=None,
            transport=self.transport,
        )
        self.emit(
            "operation.agent_spawn", {"child_session_id": child.session_id, "child_agent_id": agent_id, "task": task}
        )
        return child

    def memory(self, operation: str, *, key: str | None = None, content: Any = None) -> None:
        self.emit("operation.memory", {"operation": operation, "key": key, "content": content})

    def external_call(
        self,
        target: str,
        *,
        method: str | None = None,
        status_code: int | None = None,
        success: bool | None = None,
        duration_ms: float | None = None,
    ) -> None:
        self.emit(
            "operation.external_call",
            {
                "target": target,
                "method": method,
                "status_code": status_code,
                "success": success,
                "duration_ms": duration_ms,
            },
        )

    # -- decorator ---------------------------------------------------------------------
    def tool(self, name: str | None = None, *, record_input: bool = True) -> Callable[[F], F]:
        """Wrap a tool function (sync or async) in tool_start / tool_end; its exceptions still propagate."""

        def wrap(fn: F) -> F:
            tool_name = name or fn.__name__

            def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
                data = {"args": list(args), "kwargs": kwargs} if record_input else None
                return self.tool_start(tool_name, _jsonable(data))

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    call_id = start(args, kwargs)
                    try:
                        result = await fn(*args, **kwargs)
                    except BaseException as exc:
                        self.tool_end(call_id, success=False, error=_describe(exc))
                        raise
                    self.tool_end(call_id, success=True, output=_jsonable(result))
                    return result

                return awrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                call_id = start(args, kwargs)
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    self.tool_end(call_id, success=False, error=_describe(exc))
                    raise
                self.tool_end(call_id, success=True, output=_jsonable(result))
                return result

            return wrapper  # type: ignore[return-value]

        return wrap


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {safe_text(exc, 2000, str)}"[:2000]


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, size-bounded copy of a tool's input or output (never raises)."""
    try:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return value[:4000]
        if depth >= 4:
            return safe_text(value, 200)
        if isinstance(value, dict):
            return {safe_text(k, 200, str): _jsonable(v, depth + 1) for k, v in itertools.islice(value.items(), 100)}
        if isinstance(value, list | tuple | set):
            return [_jsonable(v, depth + 1) for v in itertools.islice(value, 100)]
    except Exception:  # a container whose iteration fails: sent as its repr
        return safe_text(value, 1000)
    return safe_text(value, 1000)


class AopClient(_Session):
    """Blocking flavour: ``flush`` and ``close`` wait (up to their timeout) on the calling thread."""

    def flush(self, timeout: float | None = None) -> bool:
        try:
            return self.transport.flush(timeout)
        except Exception:
            log.exception("agentwatch sdk: flush failed")
            return False

    def close(self, timeout: float | None = None) -> None:
        try:
            if self._owns_transport:
                self.transport.close(timeout)
            else:
                self.transport.flush(timeout)
        except Exception:
            log.exception("agentwatch sdk: close failed")

    def __enter__(self) -> AopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAopClient(_Session):
    """Asyncio flavour: ``await flush()`` / ``await close()`` never block the event loop."""

    async def flush(self, timeout: float | None = None) -> bool:
        try:
            return await asyncio.to_thread(self.transport.flush, timeout)
        except Exception:
            log.exception("agentwatch sdk: flush failed")
            return False

    async def close(self, timeout: float | None = None) -> None:
        try:
            if self._owns_transport:
                await asyncio.to_thread(self.transport.close, timeout)
            else:
                await asyncio.to_thread(self.transport.flush, timeout)
        except Exception:
            log.exception("agentwatch sdk: close failed")

    async def __aenter__(self) -> AsyncAopClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
