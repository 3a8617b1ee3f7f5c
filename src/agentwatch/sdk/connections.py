"""Each process's HTTP client to the collector, and the httpx transport under it.

Without a transport from the user, httpx makes a new one, with an empty connection pool. A
transport the user gave (``transport=``) cannot be copied (httpx keeps no record of how it was
made) and, in a forked child, its pool holds the parent's sockets: two processes writing
requests and reading answers on one connection would mix them up. So a child leaves it alone
(it neither uses nor closes it) and posts through a default transport, with the SDK's own
settings (URL, credentials, timeout), and says so once.

A ``transport_factory`` is the way to post through a transport of the user's making in every
process: it is called for the first HTTP client of the process that made the SDK's transport,
and again in each forked child. In the first process, a factory that fails is a configuration
that cannot work (``ValueError``, naming the option); in a child, where nothing may raise into
the agent, the child says so once and posts through a default transport.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import httpx

from agentwatch.sdk.encoding import safe_text

log = logging.getLogger("agentwatch.sdk")

TransportFactory = Callable[[], httpx.BaseTransport]


class Connections:
    """Makes the HTTP client of the process that asks (``new_client``)."""

    def __init__(
        self,
        http_options: dict[str, Any],
        transport: httpx.BaseTransport | None,
        factory: TransportFactory | None = None,
    ) -> None:
        self._http_options = http_options
        # the user's httpx transport, and the process it belongs to: its connection pool is that
        # process's sockets, so a forked child never uses it
        self._user_transport = transport
        self._user_transport_pid = os.getpid()
        self._factory = factory
        self._made: tuple[int, httpx.BaseTransport] | None = None  # the factory's last transport, and its process

    def new_client(self) -> httpx.Client:
        """This process's HTTP client (see the module's docstring)."""
        return httpx.Client(**self._http_options, transport=self._transport_here())

    def _transport_here(self) -> httpx.BaseTransport | None:
        if self._factory is not None:
            return self._from_factory()
        transport = self._user_transport
        if transport is not None and os.getpid() != self._user_transport_pid:
            log.warning(
                "agentwatch sdk: in this forked process (pid %d) the httpx transport given to the SDK is not "
                "used (its connections belong to the process that made it, pid %d); events are posted through "
                "a default transport. To post through a transport of your own in forked processes, give the "
                "SDK a transport_factory instead",
                os.getpid(),
                self._user_transport_pid,
            )
            transport = None
        return transport

    def _from_factory(self) -> httpx.BaseTransport | None:
        """A new transport from the user's factory; None (a default one) in a child where it failed."""
        pid = os.getpid()
        try:
            made = self._factory()
            problem = self._refusal(made, pid)
        except Exception as exc:
            made, problem = None, f"raised {type(exc).__name__}: {safe_text(exc, 200, str)}"
        if problem is None:
            self._made = (pid, made)
            return made
        if pid == self._user_transport_pid:  # the SDK's transport is being made: refuse the option
            raise ValueError(f"transport_factory: {problem}")
        log.warning(
            "agentwatch sdk: in this forked process (pid %d) transport_factory %s; events are posted through "
            "a default transport",
            pid,
            problem,
        )
        return None

    def _refusal(self, made: Any, pid: int) -> str | None:
        """Why the factory's result cannot serve this process; None when it can."""
        if not isinstance(made, httpx.BaseTransport):
            return f"returned {safe_text(type(made).__name__, 100, str)}, not an httpx transport (httpx.BaseTransport)"
        if self._made is not None and self._made[1] is made and self._made[0] != pid:
            return (
                f"returned the transport it made in pid {self._made[0]}, whose connections are that process's; "
                "it must return a new transport each time it is called"
            )
        return None
