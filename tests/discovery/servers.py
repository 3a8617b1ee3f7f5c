"""Real servers on distinct 127.0.0.x addresses, all in one background event loop.

uvicorn serves ASGI apps; raw asyncio servers stand in for non-HTTP services.
Nothing here does a DNS lookup (uvicorn binds to the literal address).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Spec:
    host: str
    port: int
    app: Any = None  # an ASGI app, or
    raw: RawHandler | None = None  # a raw TCP handler
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


# The TLS probe sends a ClientHello to plain-HTTP mocks on purpose; their complaints are noise here.
logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)


@contextmanager
def serve(specs: list[Spec], timeout: float = 10.0) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        servers: list[uvicorn.Server] = []
        raws: list[asyncio.base_events.Server] = []
        tasks = []
        try:
            for spec in specs:
                if spec.raw is not None:
                    ctx = None
                    if spec.ssl_certfile:
                        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                        ctx.load_cert_chain(spec.ssl_certfile, spec.ssl_keyfile)
                    raws.append(await asyncio.start_server(spec.raw, spec.host, spec.port, ssl=ctx))
                    continue
                config = uvicorn.Config(
                    spec.app,
                    host=spec.host,
                    port=spec.port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    ssl_certfile=spec.ssl_certfile,
                    ssl_keyfile=spec.ssl_keyfile,
                )
                server = uvicorn.Server(config)
                server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
                servers.append(server)
                tasks.append(asyncio.create_task(server.serve()))
            while not all(s.started for s in servers):
                if any(t.done() for t in tasks):
                    raise RuntimeError("a mock server failed to start")
                await asyncio.sleep(0.01)
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        await stop.wait()
        for s in servers:
            s.should_exit = True
        for r in raws:
            r.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        # raw handlers still waiting on a client (a tarpit) are cancelled, not left to die with the loop
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in leftovers:
            t.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise RuntimeError("mock servers did not start")
    if failure:
        thread.join(5)
        raise RuntimeError(f"mock servers failed: {failure[0]!r}")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
