"""A real agentwatch server on a loopback port, in a background thread."""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from agentwatch.api.factory import create_app
from agentwatch.api.serving import uvicorn_options
from agentwatch.app import Agentwatch
from agentwatch.config import Settings

# Ports handed out by ``free_port``: below the kernel's ephemeral range (32768-60999 on Linux),
# where outgoing connections take their local ports, so no client connection of any test can
# take a port between its lookup and the bind of the server it is for; each test worker
# (pytest-xdist) has its own slice, so two workers never hand out the same port, and a worker
# walks its slice in turn, so two lookups before either bind never get the same port either.
PORTS_FIRST, PORTS_END = 20_000, 32_768
SLICE = (PORTS_END - PORTS_FIRST) // 8


def _port_cycle() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = PORTS_FIRST + (int(worker) % 8 if worker.isdigit() else 0) * SLICE
    start = random.randrange(SLICE)  # a new run does not start where the last one's ports may linger
    return itertools.cycle([first + (start + i) % SLICE for i in range(SLICE)])


_ports = _port_cycle()


def free_port(host: str = "127.0.0.1") -> int:
    """A port of ``host`` that nothing is bound to now (see ``PORTS_FIRST``); a server that can
    take a socket should take :func:`bound_socket` instead."""
    for _ in range(SLICE):
        port = next(_ports)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in this worker's slice of {PORTS_FIRST}-{PORTS_END - 1} on {host}")


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port of ``host``, kept until the server on it stops: a port
    only looked up (``free_port``) can be taken, between the lookup and the server's bind, by
    any other test's server or by an outgoing connection's local port (seen: a server whose
    store took seconds to open found its port in use)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@dataclass
class RunningServer:
    aw: Agentwatch
    url: str
    server: uvicorn.Server
    headers: dict[str, str]

    def client(self, **kw: Any) -> httpx.Client:
        headers = {**self.headers, **kw.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 30), **kw)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


@contextmanager
def serve_asgi(
    app: Any, host: str, port: int, *, lifespan: str = "off", start_s: float = 20, sock: socket.socket | None = None
) -> Iterator[Any]:
    """Run ``app`` on uvicorn in a thread on ``host:port`` until the block ends (test servers and
    fakes); with ``sock`` (from :func:`bound_socket`), on that socket, which it then closes."""
    config = uvicorn.Config(app, host=host, port=port, lifespan=lifespan, **uvicorn_options())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock] if sock is not None else None}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"test server on {host}:{port} did not start")
            time.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if sock is not None:
            sock.close()


def open_settings(data_dir: Any, database_url: str) -> Settings:
    """Authentication off, and the bundled ATR set and rule pack off (they take seconds to
    compile and play no part in intake and validation)."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
    )


@contextmanager
def run_server(settings: Settings, headers: dict[str, str] | None = None) -> Iterator[RunningServer]:
    sock = bound_socket(settings.host)
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port})
    try:
        aw = Agentwatch(settings)
    except BaseException:
        sock.close()
        raise
    with serve_asgi(create_app(aw), settings.host, port, lifespan="on", sock=sock) as server:
        yield RunningServer(aw, f"http://{settings.host}:{port}", server, dict(headers or {}))
