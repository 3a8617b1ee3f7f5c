"""The uvicorn server of one process of ``serve --processes N`` that evens out connections.

Its HTTP protocol asks the :class:`~agentwatch.processes.balance.Balancer`, as each
connection is made and before any byte of it is read, whether to keep it; a connection handed
over is dropped here without a word (the other process holds the socket now). The server also
listens for connections handed to it and serves them with the same protocol, as if its own
listening socket had accepted them.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import structlog
import uvicorn

from agentwatch.processes.balance import Balancer

log = structlog.get_logger("agentwatch.processes")


def balanced_protocol(base: type, balancer: Balancer) -> type:
    """``base`` (a uvicorn HTTP protocol class) asking ``balancer`` about each new connection."""

    class Balanced(base):  # type: ignore[misc, valid-type]
        handed_to_us = False  # set on the connections another process handed over

        def connection_made(self, transport: Any) -> None:
            held = len(self.connections)
            if self.handed_to_us:
                super().connection_made(transport)
                balancer.took_up(held + 1)
                return
            target = balancer.choose(held)
            if target is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None and balancer.hand_over(target, sock.fileno()):
                    transport.set_protocol(asyncio.Protocol())  # nothing here hears of it again
                    transport.abort()  # closes this process's descriptor only
                    return
                balancer.note(held + 1)  # kept after all
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            balancer.note(len(self.connections))

    Balanced.__name__ = Balanced.__qualname__ = f"Balanced{base.__name__}"
    return Balanced


class BalancedServer(uvicorn.Server):
    """``uvicorn.Server`` that also serves the connections other processes hand it."""

    def __init__(self, config: uvicorn.Config, balancer: Balancer) -> None:
        super().__init__(config)
        self.balancer = balancer
        self._adopting: set[asyncio.Task[Any]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        config = self.config

        def handed_protocol() -> asyncio.Protocol:
            protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            protocol.handed_to_us = True
            return protocol

        def held() -> int:
            return len(self.server_state.connections)

        def adopt(conn: socket.socket) -> None:
            task = loop.create_task(loop.connect_accepted_socket(handed_protocol, conn))
            self._adopting.add(task)

            def done(t: asyncio.Task[Any]) -> None:
                self._adopting.discard(t)
                if t.cancelled() or t.exception() is not None:
                    log.warning("processes.adopt_failed", error=repr(None if t.cancelled() else t.exception()))
                    conn.close()
                    self.balancer.took_up(held())

            task.add_done_callback(done)

        self.balancer.listen(adopt, held)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.balancer.stop_listening()  # others keep what they take from now on
        await super().shutdown(sockets=sockets)
