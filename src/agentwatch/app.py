"""Composition root: builds the store, hub, pipeline, detectors and API parts from settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from sqlalchemy import Engine

from agentwatch import __version__
from agentwatch.alerts.recorder import AlertRecorder
from agentwatch.config import Settings
from agentwatch.events.codecs.oisp import OispCodec
from agentwatch.extensions import Registry, load_registry
from agentwatch.pipeline.filters import RuntimeFilters
from agentwatch.pipeline.hub import LiveHub
from agentwatch.pipeline.metrics import Metrics
from agentwatch.pipeline.pipeline import Pipeline
from agentwatch.runtime import release_heap, settle_heap, share_interpreter
from agentwatch.store.engine import checkpointer_for, make_engine, sqlite_file
from agentwatch.store.migrate import migrate
from agentwatch.store.trace_index import TraceIndexer

log = structlog.get_logger("agentwatch")

THREADS_STOP_S = 30.0  # how long a stopping server waits for work it handed to threads


class Agentwatch:
    """One running agentwatch: everything a route, a command or a test needs."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.version = __version__
        self.registry = registry or load_registry()
        self.engine: Engine = make_engine(settings.resolved_database_url())
        try:
            self._build(settings)
        except BaseException:  # nothing will stop what was not built: close the store's connections now
            self.engine.dispose()
            raise

    def _build(self, settings: Settings) -> None:
        migrate(self.engine)
        self.checkpointer = checkpointer_for(self.engine)  # SQLite only
        path = sqlite_file(self.engine)
        self.trace_indexer = TraceIndexer(path) if path else None  # SQLite only
        self.metrics = Metrics()
        self.hub = LiveHub(
            client_buffer=settings.live.client_buffer,
            on_drop=self.metrics.live_dropped.inc,
            on_publish=self.metrics.live_published.inc,
        )
        self.filters = RuntimeFilters(self.engine)
        self.started_at = time.time()
        self.components: dict[str, Any] = {}
        self.threads: ThreadPoolExecutor | None = None
        stages = [factory(self) for factory in self.registry.stages.values()]
        detectors = [factory(self) for factory in self.registry.detectors.values()]
        self.pipeline = Pipeline(
            self.engine, settings.pipeline, self.hub, self.metrics, stages=stages, detectors=detectors
        )
        self.alerts = AlertRecorder(self.engine, self.hub)
        self.pipeline.finding_sinks.append(self.alerts.record)
        self.codecs = {name: factory(self) for name, factory in self.registry.codecs.items()}
        for name, factory in self.registry.lifecycle.items():
            self.components[name] = factory(self)

    @property
    def oisp(self) -> OispCodec:
        return self.codecs["oisp"]

    def type_validator(self, event_type: str) -> Callable[[dict], list[str]] | None:
        return self.registry.event_types.get(event_type)

    async def start(self) -> None:
        # The loop's threads are this server's own, so that stop can wait for them (see
        # _finish_threads); the same size as asyncio's default pool.
        self.threads = ThreadPoolExecutor(thread_name_prefix="agentwatch")
        asyncio.get_running_loop().set_default_executor(self.threads)
        if self.checkpointer is not None:
            self.checkpointer.start()
        if self.trace_indexer is not None:
            self.trace_indexer.start()
        await self.pipeline.start()
        for name, comp in self.components.items():
            start = getattr(comp, "start", None)
            if start is not None:
                await start()
                log.info("component.started", component=name)
        settle_heap()
        share_interpreter()

    async def stop(self) -> None:
        for name, comp in reversed(list(self.components.items())):
            stop = getattr(comp, "stop", None)
            if stop is not None:
                try:
                    await stop()
                except Exception:
                    log.exception("component.stop_failed", component=name)
        await self.pipeline.stop()
        await self._finish_threads()
        if self.trace_indexer is not None:
            await asyncio.to_thread(self.trace_indexer.stop)
        self.engine.dispose()
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        log.info("server.stopped", committed=self.pipeline.committed_total, pending=self.pipeline.pending)
        release_heap()

    async def _finish_threads(self) -> None:
        """Wait for the work handed to threads (``asyncio.to_thread``, the pipeline's work thread)
        that no task waits for any more: a component stops by cancelling its task (the pipeline its
        worker, past the drain timeout), and the thread goes on. Disposing of the
        engine under it would leave the connection it holds, given back later to a pool nobody
        closes, open until the garbage collector finds it (a PostgreSQL session each time)."""
        threads, self.threads = self.threads, None
        if threads is None:
            return
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="agentwatch-stopping"))

        def finish() -> None:
            threads.shutdown(wait=True)
            self.pipeline.work.join()

        try:
            await asyncio.wait_for(asyncio.to_thread(finish), THREADS_STOP_S)
        except TimeoutError:
            log.warning("server.threads_still_running", waited_s=THREADS_STOP_S)
