"""What each server process runs: the app factory uvicorn calls in a freshly started process.

The parent (:mod:`agentwatch.processes.supervisor`) leaves the path of a file holding what
``agentwatch serve`` was given in ``AGENTWATCH_SERVE_INPUTS``; the settings are built from it
and the inherited environment exactly as the parent built its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import structlog
from fastapi import FastAPI

INPUTS_ENV = "AGENTWATCH_SERVE_INPUTS"
log = structlog.get_logger("agentwatch.processes")


def app() -> FastAPI:
    """The app of this process. A process that cannot build it exits with uvicorn's start-up
    failure status, which stops the parent (instead of it starting the process again and again)."""
    import typer
    from uvicorn.config import STARTUP_FAILURE

    from agentwatch.api.factory import create_app
    from agentwatch.app import Agentwatch
    from agentwatch.cli_settings import ServeInputs, schema_or_exit
    from agentwatch.logs import configure

    try:
        settings = ServeInputs.from_json(Path(os.environ[INPUTS_ENV]).read_bytes()).settings()
        configure(settings.log_level, settings.log_format)
        with schema_or_exit():
            return create_app(Agentwatch(settings))
    except typer.Exit:  # the reason is printed already
        sys.exit(STARTUP_FAILURE)
    except Exception:
        log.exception("processes.build_failed")
        sys.exit(STARTUP_FAILURE)
