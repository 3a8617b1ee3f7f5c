"""The parent of a server run as several processes (``processes`` above 1).

The parent binds the listening socket once and starts that many processes, each a whole
agentwatch on the shared socket and the shared store (uvicorn's multi-process supervisor:
a process that dies is replaced, SIGTERM or SIGINT stops them all, each draining what it
accepted). It also runs the relay that joins their live streams. What the children need
from it lies in a directory only this user can enter, removed when the server stops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import structlog

from agentwatch.cli_settings import ServeInputs
from agentwatch.config import Settings
from agentwatch.processes.child import INPUTS_ENV
from agentwatch.processes.link import RELAY_ENV
from agentwatch.processes.relay import Relay

log = structlog.get_logger("agentwatch.processes")


def serve_processes(settings: Settings, inputs: ServeInputs) -> int:
    """Run until stopped; the exit status (1 when the processes could not start)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from agentwatch.api.serving import uvicorn_options

    workdir = Path(tempfile.mkdtemp(prefix="agentwatch-"))  # mode 0700
    relay = Relay(str(workdir / "relay.sock"))
    try:
        inputs_path = workdir / "serve.json"
        fd = os.open(inputs_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(inputs.to_json())
        relay.start()
        os.environ[INPUTS_ENV] = str(inputs_path)
        os.environ[RELAY_ENV] = relay.path
        config = uvicorn.Config(
            "agentwatch.processes.child:app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.processes,
            timeout_graceful_shutdown=int(settings.pipeline.shutdown_drain_s),
            **uvicorn_options(),
        )
        try:
            sock = config.bind_socket()
        except SystemExit:  # logged by uvicorn, e.g. the port is taken
            return 1
        log.info("processes.starting", processes=settings.processes, host=settings.host, port=settings.port)
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        sock.close()
        failed = [p.pid for p in supervisor.processes if p.exitcode == STARTUP_FAILURE]
        if failed:
            log.error("processes.start_failed", pids=failed)
            return 1
        log.info("processes.stopped", relayed=relay.forwarded)
        return 0
    finally:
        os.environ.pop(INPUTS_ENV, None)
        os.environ.pop(RELAY_ENV, None)
        relay.stop()
        shutil.rmtree(workdir, ignore_errors=True)
