"""The investigator (lifecycle component ``investigations``): runs investigations in the
background, at most ``investigations.max_concurrent`` at once on a node, each within
``investigations.max_wall_s``, and records every step in the ledger before going on.

An investigation is ``queued`` until a slot is free, then ``running``, then ``done`` (with its
report) or ``failed`` (with ``error`` naming the bound, the backend's failure or the ledger's).
When the ledger cannot store an entry the investigation stops there: it is marked failed and
nothing more is recorded (the ledger holds every step taken, and no step is taken unrecorded).
The wall-time cut (or the node stopping) never cuts a ledger write short: a write under way is
let finish first, and the run then ends with its ``failure`` entry after it.
When the node stops, its queued and running investigations are marked failed; at start,
investigations left active by a node that stopped without doing so are marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from agentwatch.alerts.explain import ExplainError
from agentwatch.soc.investigations import llm, prompt, runner, seal, store
from agentwatch.soc.investigations.ledger import Ledger, LedgerWriteFailed

log = structlog.get_logger("agentwatch.investigations")

FAILURE_TRIES = 3  # attempts at storing the failure entry when the store fails
FAILURE_RETRY_S = 0.2


class LedgerSink:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def record(self, kind: str, payload: dict[str, Any]) -> None:
        write = asyncio.ensure_future(asyncio.to_thread(self.ledger.append, kind, payload))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # cut (wall time, or the node stopping) while the entry was being written: the write
            # goes on in its thread either way; wait for it, so the ledger's head is known when
            # the failure entry follows, then stop as asked
            with contextlib.suppress(Exception):
                await write
            raise


class LiveBackend:
    """The model, asked only while the case is still open: a case closed (``DELETE``) since the
    investigation began stops it before the next question, so the closed case's ledger stops
    growing."""

    def __init__(self, aw: Any, case_id: str) -> None:
        self.aw = aw
        self.case_id = case_id

    async def ask(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int) -> llm.Turn:
        status = await asyncio.to_thread(store.case_status, self.aw.engine, self.case_id)
        if status is None:
            raise runner.Stopped("case_id: the case no longer exists")
        if status == "closed":
            raise runner.Stopped("case_id: the case was closed; an investigation of a closed case stops")
        return await llm.chat(self.aw.settings.llm, messages, tools, max_tokens)


class ReplaysBusy(Exception):
    """As many replays as ``investigations.max_concurrent`` are running on this node."""


class Investigator:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.ledger_key = seal.ledger_key(aw.settings)  # seals and checks ledger heads (seal.py)
        self._slots: asyncio.Semaphore | None = None
        self._replays: asyncio.Semaphore | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @contextlib.asynccontextmanager
    async def replay_slot(self) -> AsyncIterator[None]:
        """Hold one of the node's replay slots (as many as ``investigations.max_concurrent``);
        raises :class:`ReplaysBusy` at once when none is free (a replay re-runs every tool call)."""
        if self._replays is None:
            self._replays = asyncio.Semaphore(self.settings.max_concurrent)
        if self._replays.locked():
            raise ReplaysBusy
        async with self._replays:
            yield

    @property
    def settings(self) -> Any:
        return self.aw.settings.investigations

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.settings.max_concurrent)
        gone = await asyncio.to_thread(store.abandon_stale, self.aw.engine, self.settings.max_wall_s, time.time())
        if gone:
            log.info("investigations.abandoned", count=gone)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def begin(self, case_id: str, who: str) -> dict[str, Any]:
        """Queue an investigation of the case and start it; its row. Raises
        :class:`store.Busy` and :class:`store.TooMany`."""
        s = self.settings
        row = await asyncio.to_thread(
            store.create, self.aw.engine, case_id, who, s.max_per_case, s.max_wall_s, self.ledger_key
        )
        task = asyncio.create_task(self._run(row), name=f"agentwatch-investigation-{row['id']}")
        self._tasks[row["id"]] = task
        task.add_done_callback(lambda _t, k=row["id"]: self._tasks.pop(k, None))
        log.info("investigations.queued", investigation_id=row["id"], case_id=case_id)
        return row

    async def _run(self, row: dict[str, Any]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.max_concurrent)
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:  # stopped while queued: free the case now, not after the abandon margin
            await self._finish(row["id"], "failed", runner.State(), "stopped: the server stopped before it ran")
            raise
        try:
            await self._investigate(row)
        finally:
            self._slots.release()

    async def _investigate(self, row: dict[str, Any]) -> None:
        engine, s, iid = self.aw.engine, self.settings, row["id"]
        ledger = Ledger(engine, iid, row["case_id"], row["created_at"], self.ledger_key)
        state = runner.State()
        status, error = "failed", None
        try:
            if not await asyncio.to_thread(store.set_running, engine, iid, self.aw.settings.llm.model or ""):
                log.info("investigations.not_run", investigation_id=iid, reason="no longer queued")
                return
        except SQLAlchemyError as exc:  # left queued: marked abandoned later (store.abandon_stale)
            log.warning("investigations.not_started", investigation_id=iid, error=type(exc).__name__)
            return
        try:
            async with asyncio.timeout(s.max_wall_s):
                case = await asyncio.to_thread(prompt.case_data, engine, row["case_id"], s)
                if case is None:
                    raise runner.Stopped("case_id: the case no longer exists")
                await runner.investigate(
                    self.aw,
                    s,
                    self.aw.settings.llm.max_tokens,
                    case,
                    row["nonce"],
                    LiveBackend(self.aw, row["case_id"]),
                    LedgerSink(ledger),
                    state,
                )
            status = "done"
        except LedgerWriteFailed as exc:
            error = str(exc)  # nothing more may be recorded
        except asyncio.CancelledError:
            error = "stopped: the server stopped during the investigation"
            await self._failure(ledger, error)
            await self._finish(iid, "failed", state, error)
            raise
        except TimeoutError:
            error = f"investigations.max_wall_s: not done within {s.max_wall_s:g} s"
            await self._failure(ledger, error)
        except (runner.Stopped, ExplainError) as exc:
            error = str(exc)
            await self._failure(ledger, error)
        except Exception:
            log.exception("investigations.crashed", investigation_id=iid)
            error = "internal error: see the server log"
            await self._failure(ledger, error)
        await self._finish(iid, status, state, error)
        log.info("investigations.finished", investigation_id=iid, status=status, steps=state.steps, tokens=state.tokens)

    async def _failure(self, ledger: Ledger, error: str) -> None:
        """Record the failure entry, trying again a few times when the store failed (not when the
        investigation was marked abandoned meanwhile: then nothing more may be recorded)."""
        for attempt in range(FAILURE_TRIES):
            try:
                await asyncio.to_thread(ledger.append, "failure", {"error": error})
                return
            except LedgerWriteFailed as exc:
                if not exc.transient or attempt == FAILURE_TRIES - 1:
                    log.warning("investigations.failure_not_recorded", investigation_id=ledger.investigation_id)
                    return
                await asyncio.sleep(FAILURE_RETRY_S * (attempt + 1))

    async def _finish(self, iid: str, status: str, state: runner.State, error: str | None) -> None:
        try:
            await asyncio.to_thread(
                store.finish,
                self.aw.engine,
                iid,
                status,
                steps=state.steps,
                tokens=state.tokens,
                error=error,
                report=state.report,
            )
        except Exception:
            log.exception("investigations.finish_failed", investigation_id=iid)


def investigator_of(aw: Any) -> Investigator:
    return aw.components["investigations"]
