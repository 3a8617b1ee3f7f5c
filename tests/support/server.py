"""A real agentwatch server on a loopback port, in a background thread."""

from __future__ import annotations

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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
def serve_asgi(app: Any, host: str, port: int, *, lifespan: str = "off", start_s: float = 20) -> Iterator[Any]:
    """Run ``app`` on uvicorn in a thread on ``host:port`` until the block ends (test servers and fakes)."""
    config = uvicorn.Config(app, host=host, port=port, lifespan=lifespan, **uvicorn_options())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"test server on {host}:{port} did not start")
        time.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


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
    port = free_port()
    settings = settings.model_copy(update={"port": port})
    aw = Agentwatch(settings)
    with serve_asgi(create_app(aw), settings.host, port, lifespan="on") as server:
        yield RunningServer(aw, f"http://{settings.host}:{port}", server, dict(headers or {}))
