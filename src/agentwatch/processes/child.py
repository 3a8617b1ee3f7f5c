"""What each server process runs (started by :mod:`agentwatch.processes.supervisor`).

The parent leaves the path of a file holding what ``agentwatch serve`` was given in
``AGENTWATCH_SERVE_INPUTS``; the settings are built from it and the inherited environment
exactly as the parent built its own. On Linux the process binds its own socket with
``SO_REUSEPORT`` (steered by client address with ``processes_spread = "address"``, see
:mod:`agentwatch.processes.steering`); elsewhere it listens on the one the parent passed.
Spread by connection, the processes even out the connections they hold
(:mod:`agentwatch.processes.balance`).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import structlog

INPUTS_ENV = "AGENTWATCH_SERVE_INPUTS"
LISTEN_BACKLOG = 2048  # uvicorn's
STARTUP_FAILURE = 3  # uvicorn's exit status when a server could not start; stops the parent
log = structlog.get_logger("agentwatch.processes")


def run_process(host: str, port: int, shared: socket.socket | None, index: int = 0) -> None:
    """Build this process's server (the ``index``-th) and serve until SIGTERM or SIGINT. A
    process that cannot build it exits with ``STARTUP_FAILURE`` (instead of being started
    again and again)."""
    import typer
    import uvicorn

    from agentwatch.api.factory import create_app
    from agentwatch.api.serving import uvicorn_options
    from agentwatch.app import Agentwatch
    from agentwatch.cli_settings import ServeInputs, schema_or_exit
    from agentwatch.logs import configure
    from agentwatch.processes.balance import BALANCE_ENV, Balancer
    from agentwatch.processes.balanced_server import BalancedServer, balanced_protocol
    from agentwatch.processes.steering import steer_by_address
    from agentwatch.processes.supervisor import listening_socket

    try:
        settings = ServeInputs.from_json(Path(os.environ[INPUTS_ENV]).read_bytes()).settings()
        configure(settings.log_level, settings.log_format)
        with schema_or_exit():
            app = create_app(Agentwatch(settings))
        sock = shared if shared is not None else listening_socket(host, port, reuse_port=True)
        if shared is None and settings.processes_spread == "address":
            sock.listen(LISTEN_BACKLOG)  # the program attaches to the group a listening socket is in
            steer_by_address(sock, settings.processes)
        balance_dir = os.environ.get(BALANCE_ENV)
        balancer = None
        if balance_dir and settings.processes_spread == "connection":
            balancer = Balancer(balance_dir, index, settings.processes)
    except typer.Exit:  # the reason is printed already
        sys.exit(STARTUP_FAILURE)
    except Exception:
        log.exception("processes.build_failed")
        sys.exit(STARTUP_FAILURE)
    options = uvicorn_options()
    if balancer is not None:
        options["http"] = balanced_protocol(options["http"], balancer)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=int(settings.pipeline.shutdown_drain_s),
        **options,
    )
    server = uvicorn.Server(config) if balancer is None else BalancedServer(config, balancer)
    server.run(sockets=[sock])
