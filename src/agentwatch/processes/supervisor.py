"""The parent of a server run as several processes (``processes`` above 1).

The parent starts that many processes, each a whole agentwatch on the shared store, and
watches them: a process that dies is started again (a second later if it lived less than
a few seconds), one that cannot start (exit status 3) stops the server with exit 1, and
SIGTERM or SIGINT stops them all, each draining what it accepted first. It names a directory
for prometheus_client's multi-process mode, so that ``/metrics`` adds up every process's.

On Linux each process listens on a socket of its own bound with ``SO_REUSEPORT``, and the
kernel spreads new connections over them by their addresses. A socket shared by all the
processes spreads them badly: the process that wakes first takes every connection waiting,
so the four connections a client opens at once all went to one process. Elsewhere
(``SO_REUSEPORT`` does not spread connections there) the processes share one socket the
parent binds. The parent also runs the relay that joins the processes' live streams, and
makes the table their request rate-limit counters share (``soc.auth.shared_counter``) and the
directory of their live streams' places (``processes.places``) and the table by which they
even out the connections they hold (``processes.balance``). What the processes need from
it lies in a directory only this user can enter, removed when the server stops.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.multiprocess import mark_process_dead

from agentwatch.cli_settings import ServeInputs
from agentwatch.config import Settings
from agentwatch.pipeline.metrics import MULTIPROCESS_ENV
from agentwatch.processes.balance import BALANCE_ENV
from agentwatch.processes.balance import available as balance_available
from agentwatch.processes.balance import create_table as create_balance_table
from agentwatch.processes.child import INPUTS_ENV, STARTUP_FAILURE, run_process
from agentwatch.processes.link import RELAY_ENV
from agentwatch.processes.places import PLACES_ENV
from agentwatch.processes.relay import Relay
from agentwatch.soc.auth.shared_counter import SHARED_COUNTERS_ENV, create_table

log = structlog.get_logger("agentwatch.processes")
SHORT_LIFE_S = 5.0  # a process that died sooner is started again after RESTART_PAUSE_S
RESTART_PAUSE_S = 1.0
STOP_GRACE_S = 15.0  # beyond the drain time, before a process that will not stop is killed
SPREADS_BY_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, settings: Settings, metrics_dir: Path) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.count = settings.processes
        self.stopping = False
        self.failed = False
        self._context = multiprocessing.get_context("spawn")
        self._children: list[Any] = []
        self._started_at: list[float] = []
        self._shared: socket.socket | None = None
        self._port = settings.port

    def run(self, held: socket.socket) -> int:
        """Run until stopped; ``held`` is the socket bound to check the address (on Linux it
        only keeps the port this user's; elsewhere every process listens on it)."""
        if not SPREADS_BY_PORT:
            self._shared = held
        self._port = held.getsockname()[1]  # the one the system chose, for port 0
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for i in range(self.count):
                self._children.append(self._start(i))
                self._started_at.append(time.monotonic())
            while not self.stopping:
                wait([c.sentinel for c in self._children], timeout=0.5)
                self._replace_dead()
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("processes.stopping", signal=signal.Signals(signum).name)
        self.stopping = True

    def _start(self, index: int) -> Any:
        s = self.settings
        child = self._context.Process(
            target=run_process,
            args=(s.host, self._port, self._shared, index),
            name="agentwatch-server",
            daemon=False,
        )
        child.start()
        return child

    def _replace_dead(self) -> None:
        for i, child in enumerate(self._children):
            if child.is_alive() or self.stopping:
                continue
            child.join()
            mark_process_dead(child.pid, str(self.metrics_dir))  # its gauges no longer count
            if child.exitcode == STARTUP_FAILURE:
                log.error("processes.start_failed", pid=child.pid)
                self.failed = self.stopping = True
                return
            lived = time.monotonic() - self._started_at[i]
            log.warning("processes.died", pid=child.pid, exit=child.exitcode, lived_s=round(lived, 1))
            if lived < SHORT_LIFE_S:
                time.sleep(RESTART_PAUSE_S)
            self._children[i] = self._start(i)
            self._started_at[i] = time.monotonic()

    def _stop_all(self) -> None:
        for child in self._children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.pipeline.shutdown_drain_s + STOP_GRACE_S
        for child in self._children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                log.error("processes.kill", pid=child.pid)
                child.kill()
                child.join()


def serve_processes(settings: Settings, inputs: ServeInputs) -> int:
    """Run until stopped; the exit status (1 when the address is taken or a process could not start)."""
    workdir = Path(tempfile.mkdtemp(prefix="agentwatch-"))  # mode 0700
    relay = Relay(str(workdir / "relay.sock"))
    try:
        try:
            held = listening_socket(settings.host, settings.port, reuse_port=SPREADS_BY_PORT)
        except OSError as exc:
            log.error("processes.bind_failed", host=settings.host, port=settings.port, error=str(exc))
            return 1
        inputs_path = workdir / "serve.json"
        fd = os.open(inputs_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(inputs.to_json())
        metrics_dir = workdir / "metrics"
        metrics_dir.mkdir()
        counters_path = workdir / "counters"
        create_table(str(counters_path))
        places_dir = workdir / "places"
        places_dir.mkdir()
        if balance_available:
            balance_dir = workdir / "balance"
            balance_dir.mkdir()
            create_balance_table(str(balance_dir), settings.processes)
            os.environ[BALANCE_ENV] = str(balance_dir)
        relay.start()
        os.environ[INPUTS_ENV] = str(inputs_path)
        os.environ[RELAY_ENV] = relay.path
        os.environ[MULTIPROCESS_ENV] = str(metrics_dir)
        os.environ[SHARED_COUNTERS_ENV] = str(counters_path)
        os.environ[PLACES_ENV] = str(places_dir)
        log.info("processes.starting", processes=settings.processes, host=settings.host, port=held.getsockname()[1])
        with held:
            code = Supervisor(settings, metrics_dir).run(held)
        log.info("processes.stopped", relayed=relay.forwarded, relay_dropped=relay.dropped)
        return code
    finally:
        os.environ.pop(INPUTS_ENV, None)
        os.environ.pop(RELAY_ENV, None)
        os.environ.pop(MULTIPROCESS_ENV, None)
        os.environ.pop(SHARED_COUNTERS_ENV, None)
        os.environ.pop(PLACES_ENV, None)
        os.environ.pop(BALANCE_ENV, None)
        relay.stop()
        shutil.rmtree(workdir, ignore_errors=True)
