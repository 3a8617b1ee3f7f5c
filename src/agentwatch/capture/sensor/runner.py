"""The sensor's main loop: poll processes and connections, read inotify, ship batches."""

from __future__ import annotations

import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agentwatch.capture.gateway.identify import provider_index
from agentwatch.capture.sensor.files import FileWatcher
from agentwatch.capture.sensor.procs import ProcessPoller
from agentwatch.capture.sensor.shipper import DiskBuffer, Shipper
from agentwatch.capture.settings import SensorSettings

log = structlog.get_logger("agentwatch.sensor")

# What a non-root sensor cannot see (also in docs/capture.md).
LIMITATIONS = [
    "processes that start and exit between two polls (poll_interval_s) are missed",
    "exit codes are not observable by polling: process.exit carries exit_code -1",
    "other users' processes show no exe/cwd/cmdline and their sockets are not attributed unless run as root",
    "connections opened and closed between two polls are missed; UDP and DNS are not reported",
    "inotify does not name the process that opened or wrote a watched file",
    "file contents and LLM payloads are not captured (use the gateway for LLM traffic)",
]


class Sensor:
    def __init__(self, settings: SensorSettings, server: str, api_key: str | None, buffer_dir: Path) -> None:
        self.settings = settings
        self.poller = ProcessPoller(provider_index(None))
        self.files = FileWatcher(settings.watched_paths)
        self.shipper = Shipper(server, api_key, DiskBuffer(buffer_dir, settings.buffer_max_bytes))
        self.pending: list[dict[str, Any]] = []
        self.running = True
        self.stopped_by: int | None = None  # the signal that stopped the loop
        self.last_flush = time.monotonic()
        self.on_ready: Any = None

    def step(self) -> None:
        self.pending += self.poller.poll()
        self._flush_if_due()

    def _flush_if_due(self, force: bool = False) -> None:
        due = time.monotonic() - self.last_flush >= self.settings.flush_interval_s
        if not (force or due or len(self.pending) >= self.settings.batch_size):
            return
        while True:
            size = self.settings.batch_size
            batch, self.pending = self.pending[:size], self.pending[size:]
            self.shipper.ship(batch)
            if not self.pending:
                break
        self.last_flush = time.monotonic()

    def run(self, duration_s: float | None = None) -> None:
        for problem in self.files.problems:
            log.info("sensor.watch_skipped", problem=problem)
        started = time.monotonic()
        self.poller.poll()  # prime: what runs already is not "new"
        if self.on_ready is not None:
            self.on_ready(len(self.files.watches))
        next_poll = time.monotonic()
        while self.running:
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            timeout = max(0.0, next_poll - time.monotonic())
            ready, _, _ = select.select([self.files.fileno()], [], [], timeout)
            if ready:
                self.pending += self.files.read()
            if time.monotonic() >= next_poll:
                self.pending += self.poller.poll()
                next_poll = time.monotonic() + self.settings.poll_interval_s
            self._flush_if_due()
        self._flush_if_due(force=True)
        self.shipper.close()
        self.files.close()

    def stop(self, signum: int | None = None, _frame: Any = None) -> None:
        self.stopped_by = signum
        self.running = False


@dataclass(frozen=True)
class SensorRun:
    """How a sensor run ended: its counters, and whether Ctrl-C (SIGINT) stopped it."""

    stats: dict[str, int]
    interrupted: bool


def run_sensor(
    settings: SensorSettings,
    server: str,
    api_key: str | None,
    buffer_dir: Path,
    duration_s: float | None,
    on_ready: Any = None,
) -> SensorRun:
    sensor = Sensor(settings, server, api_key, buffer_dir)
    sensor.on_ready = on_ready
    signal.signal(signal.SIGTERM, sensor.stop)
    signal.signal(signal.SIGINT, sensor.stop)
    sensor.run(duration_s)
    stats = {
        "sent": sensor.shipper.sent,
        "rejected": sensor.shipper.rejected,
        "buffered_dropped": sensor.shipper.buffer.dropped,
        "pid": os.getpid(),
    }
    return SensorRun(stats, interrupted=sensor.stopped_by == signal.SIGINT)
