"""Replay of a recorded investigation: the same loop (:mod:`runner`) with the model's recorded
answers fed back in place of the backend (the model is never asked), each recorded tool call run
again against the store, and what the replay would record compared with what was recorded.

The answer says, for each tool call, whether its result still hashes the same (``same``); for
every entry whose replayed payload differs from the recorded one, where (``divergences``);
whether the stored chain verifies (``chain``, :func:`ledger.verify`: a changed entry is caught
there even when the replay itself agrees); and ``identical`` when all of it holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from agentwatch.alerts.explain import ExplainError
from agentwatch.soc.investigations import ledger, prompt, runner, store
from agentwatch.soc.investigations.llm import Turn, parse_turn


class Exhausted(Exception):
    """The replay asked for more answers than were recorded."""


class RecordedBackend:
    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.used = 0

    async def ask(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int) -> Turn:
        if self.used >= len(self.answers):
            raise Exhausted
        a = self.answers[self.used]
        self.used += 1
        # read back as the backend's answer is read: a changed entry cannot steer the loop off its rules
        raw = orjson.dumps({"model": a.get("model"), "choices": [{"message": a.get("message")}]})
        turn = parse_turn(raw, "")
        tokens = a.get("tokens")
        turn.tokens = tokens if isinstance(tokens, int) and tokens >= 0 else None
        turn.usage = a.get("usage") if isinstance(a.get("usage"), dict) else {}
        turn.finish_reason = a.get("finish_reason") if isinstance(a.get("finish_reason"), str) else None
        return turn


class ListSink:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    async def record(self, kind: str, payload: dict[str, Any]) -> None:
        self.entries.append((kind, payload))


def _step_of(payload: dict[str, Any]) -> Any:
    return payload.get("step") if isinstance(payload, dict) else None


def compare(recorded: list[tuple[str, dict[str, Any]]], replayed: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The per-tool-call results and the divergences of ``replayed`` from ``recorded``."""
    calls: list[dict[str, Any]] = []
    by_call = {(p.get("step"), p.get("index")): p for k, p in replayed if k == "tool_result" and isinstance(p, dict)}
    for kind, p in recorded:
        if kind != "tool_result" or not isinstance(p, dict):
            continue
        again = by_call.get((p.get("step"), p.get("index")))
        calls.append(
            {
                "step": p.get("step"),
                "index": p.get("index"),
                "call_id": p.get("call_id"),
                "tool": p.get("name"),
                "recorded_hash": p.get("result_hash"),
                "replayed_hash": again.get("result_hash") if again else None,
                "same": again is not None and again.get("result_hash") == p.get("result_hash"),
            }
        )
    divergences = []
    for seq, (was, now) in enumerate(zip(recorded, replayed, strict=False), start=1):
        if was[0] != now[0] or ledger.canonical(was[1]) != ledger.canonical(now[1]):
            divergences.append({"seq": seq, "kind": was[0], "replayed_kind": now[0], "step": _step_of(was[1])})
    for seq in range(len(replayed) + 1, len(recorded) + 1):
        divergences.append(
            {"seq": seq, "kind": recorded[seq - 1][0], "replayed_kind": None, "step": _step_of(recorded[seq - 1][1])}
        )
    for seq in range(len(recorded) + 1, len(replayed) + 1):
        divergences.append(
            {"seq": seq, "kind": None, "replayed_kind": replayed[seq - 1][0], "step": _step_of(replayed[seq - 1][1])}
        )
    return {"tool_calls": calls, "divergences": divergences}


async def replay(aw: Any, investigation_id: str, key: bytes) -> dict[str, Any]:
    """Replay the (finished) investigation; the comparison (see the module's docstring).
    ``key`` checks the ledger head's seal (:func:`ledger.verify`)."""
    s = aw.settings.investigations
    row = await asyncio.to_thread(store.row, aw.engine, investigation_id)
    chain = await asyncio.to_thread(ledger.verify, aw.engine, investigation_id, key)
    recorded = await asyncio.to_thread(store.recorded, aw.engine, investigation_id)
    answers = [p for k, p in recorded if k == "llm_response"]
    sink, error = ListSink(), None
    try:
        async with asyncio.timeout(s.max_wall_s):
            case = await asyncio.to_thread(prompt.case_data, aw.engine, row.case_id, s)
            if case is None:
                raise runner.Stopped("case_id: the case no longer exists")
            await runner.investigate(
                aw, s, aw.settings.llm.max_tokens, case, row.nonce, RecordedBackend(answers), sink, runner.State()
            )
    except Exhausted:
        error = None  # the recording ended here (the model failed, or the run stopped)
    except TimeoutError:
        error = f"investigations.max_wall_s: not done within {s.max_wall_s:g} s"
    except (runner.Stopped, ExplainError) as exc:
        error = str(exc)
    if error is not None:
        sink.entries.append(("failure", {"error": error}))
    elif recorded and recorded[-1][0] == "failure" and len(sink.entries) == len(recorded) - 1:
        sink.entries.append(recorded[-1])  # the recorded failure came from outside the loop (the backend)
    found = compare(recorded, sink.entries)
    identical = bool(chain and chain["verified"]) and not found["divergences"]
    return {
        "investigation_id": investigation_id,
        "case_id": row.case_id,
        "status": row.status,
        "identical": identical,
        "chain": chain,
        "entries": {"recorded": len(recorded), "replayed": len(sink.entries)},
        **found,
    }
