"""A relay the upstream broke off is ended unfinished on purpose; the server is told so.

When the upstream hangs up in the middle of a streamed answer, the gateway leaves the agent's
response unfinished (no last chunk), so the agent sees the same break the gateway saw instead
of an answer that looks whole. The ASGI server takes an application that returns with its
response unfinished for a fault and logs it at ERROR. :func:`mark` records, in the request's
own context, that this ending was the gateway's choice (the gateway logs it as a warning
itself); :class:`IntendedCut` drops the server's record for such a request only.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

SERVER_LOGGER = "uvicorn.error"
UNFINISHED = "ASGI callable returned without completing response."

_cut: ContextVar[bool] = ContextVar("agentwatch_gateway_relay_cut", default=False)


def mark() -> None:
    """Note that the current request's response is left unfinished on purpose."""
    _cut.set(True)


class IntendedCut(logging.Filter):
    """Drops the server's "returned without completing response" record of a marked request."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_cut.get() and record.getMessage() == UNFINISHED)


def install() -> None:
    """Put the filter on the server's logger once."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, IntendedCut) for f in logger.filters):
        logger.addFilter(IntendedCut())
