"""Prometheus metrics of one agentwatch instance (own registry, fixed label sets).

A server run as several processes (``processes``) has its parent name a directory in
``PROMETHEUS_MULTIPROC_DIR`` before it starts them: prometheus_client then keeps each
process's values in files there, and :meth:`Metrics.exposed` adds up every process's
(gauges: the sum over the processes alive), so ``/metrics`` shows the whole server whichever
process answers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("agentwatch_events_received", "Events decoded from any source", ["source"], registry=r)
        self.rejected = Counter("agentwatch_events_rejected", "Events refused by validation", ["source"], registry=r)
        self.committed = Counter("agentwatch_events_committed", "Events stored", registry=r)
        self.duplicates = Counter("agentwatch_events_duplicate", "Events already stored (same event_id)", registry=r)
        self.filtered = Counter(
            "agentwatch_events_filtered", "Events dropped by the runtime process filter", registry=r
        )
        self.dropped = Counter("agentwatch_events_dropped", "Events dropped, by reason", ["reason"], registry=r)
        self.queue_depth = Gauge(
            "agentwatch_pipeline_queue_depth", "Events waiting for commit", registry=r, multiprocess_mode="livesum"
        )
        self.batch_seconds = Histogram(
            "agentwatch_pipeline_batch_seconds",
            "Time to run stages and commit one micro-batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "agentwatch_pipeline_batch_events",
            "Events per committed micro-batch",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.inline_lock_waits = Counter(
            "agentwatch_pipeline_inline_lock_waits",
            "Small SQLite batches handed to a thread because another writer held the lock",
            registry=r,
        )
        self.findings = Counter("agentwatch_findings", "Detector findings", ["detector"], registry=r)
        self.detector_errors = Counter(
            "agentwatch_detector_errors",
            "Batches a detector failed on (their events stay stored)",
            ["detector"],
            registry=r,
        )
        self.live_clients = Gauge(
            "agentwatch_live_clients", "Connected live-stream clients", registry=r, multiprocess_mode="livesum"
        )
        self.live_dropped = Counter(
            "agentwatch_live_dropped", "Frames dropped for slow live-stream clients", registry=r
        )
        self.live_published = Counter(
            "agentwatch_live_published",
            "Items published to the live streams (each once, whichever server process published it)",
            registry=r,
        )
        self.bodies_over_budget = Counter(
            "agentwatch_http_bodies_over_budget",
            "Requests answered 503 because the server held its budget of request-body bytes",
            registry=r,
        )
        self._by_source: dict[str, tuple[Counter, Counter]] = {}

    def count_intake(self, source: str, received: int, rejected: int) -> None:
        """Count one request's decoded and refused events (the labelled children are looked up once)."""
        pair = self._by_source.get(source)
        if pair is None:
            pair = self._by_source[source] = (self.received.labels(source), self.rejected.labels(source))
        pair[0].inc(received)
        if rejected:
            pair[1].inc(rejected)

    def set_gauges(self, queue_depth: int, live_clients: int) -> None:
        """The gauges, read when they are shown (and every second by each of several processes)."""
        self.queue_depth.set(queue_depth)
        self.live_clients.set(live_clients)

    def exposed(self) -> CollectorRegistry:
        """What ``/metrics`` shows: this registry, or the sum over the server's processes."""
        path = os.environ.get(MULTIPROCESS_ENV)
        if not path:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path)
        return registry
