"""The UEBA part started and stopped with the server: it reads the baselines back at start,
writes the changed ones every ``ueba.persist_interval_s`` (deleting, then, the anomalies older
than ``ueba.anomaly_retention_days``) and once more at shutdown, and stores
each anomaly with its alert (a finding sink placed before the alert recorder, which then only
publishes and notifies).

The last write happens when this part stops, before the pipeline's own drain: on a single node
the HTTP server has finished its requests by then, so every acknowledged event is in it; a NATS
worker's events committed during its drain are learnt but written only by a later run's
persist of the same entities (the baseline misses at most those)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from agentwatch.pipeline.pipeline import Finding
from agentwatch.ueba import anomalies
from agentwatch.ueba.detector import detector_of

log = structlog.get_logger("agentwatch.ueba")


class UebaKeeper:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.detector = detector_of(aw)
        self._task: asyncio.Task[None] | None = None
        aw.pipeline.finding_sinks.insert(0, self.record)

    async def record(self, findings: list[Finding]) -> None:
        ours = [f for f in findings if f.detector == self.detector.name and f.stored_as is None]
        if ours:
            try:
                await asyncio.to_thread(anomalies.record, self.aw.engine, ours)
            except Exception:  # the recorder still stores their alerts
                log.exception("ueba.anomalies_not_stored", anomalies=len(ours))

    async def _persist(self) -> None:
        try:
            written = await asyncio.to_thread(self.detector.persist)
        except Exception:
            log.exception("ueba.persist_failed")
            return
        if written:
            log.debug("ueba.persisted", baselines=written)

    async def _prune(self) -> None:
        before = time.time() - self.aw.settings.ueba.anomaly_retention_days * 86_400
        try:
            gone = await asyncio.to_thread(anomalies.prune, self.aw.engine, before)
        except Exception:
            log.exception("ueba.prune_failed")
            return
        if gone:
            log.info("ueba.anomalies_pruned", anomalies=gone)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.aw.settings.ueba.persist_interval_s)
            await self._persist()
            await self._prune()

    async def start(self) -> None:
        if not self.aw.settings.ueba.enabled:
            return
        if self.aw.settings.pipeline.role != "api":
            # an API node learns nothing: a copy of the store taken now would go stale, so its
            # routes read the store the workers write
            await asyncio.to_thread(self.detector.load)
        self._task = asyncio.create_task(self._run(), name="agentwatch-ueba-persist")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._persist()
