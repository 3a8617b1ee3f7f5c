"""Structured logs (JSON lines by default) through structlog, stdlib logging included.

Every record, ours and the libraries' (uvicorn, websockets, httpx, SQLAlchemy), passes
:func:`mask_secrets` right before it is rendered, its exception text included: a WebSocket
request line carries ``?access_token=``, the websockets library prints handshake headers
(``Authorization``, ``Cookie``) at DEBUG, and a database error quotes the values of the row
it refused.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from agentwatch.masking import scrub


def mask_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Processor: credential-named fields and known secret shapes in every field become ``***``."""
    return {k: scrub(v, k) for k, v in event_dict.items()}


def configure(level: str = "INFO", fmt: str = "json") -> None:
    # Tracebacks are plain: the console renderer's default (rich) prints every frame's local
    # variables, which may hold a password, a token or a request body.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, mask_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # format_exc_info: a stdlib record's exception (uvicorn's "Exception in ASGI application")
            # becomes its traceback text; the JSON renderer would otherwise show only its repr
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                mask_secrets,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
