"""Log output: what a traceback may show."""

from __future__ import annotations

import logging
import sys

import pytest
import structlog

from agentwatch.logs import configure


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_never_shows_local_variables(fmt):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_structlog = structlog.get_config()
    try:
        configure("INFO", fmt)
        (handler,) = root.handlers  # what configure installed for standard-library records

        def login(password: str) -> None:
            raise RuntimeError("check failed")

        secret = "-".join(["hunter2", "do", "not", "log"])  # never whole in the source a traceback quotes
        try:
            login(secret)
        except RuntimeError:
            exc_info = sys.exc_info()
        # a record as uvicorn logs an exception raised by the app
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None, exc_info
        )
        text = handler.format(record)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.configure(**saved_structlog)
    assert "Exception in ASGI application" in text and "RuntimeError: check failed" in text
    assert "hunter2-do-not-log" not in text
    assert ", in login" in text  # the whole traceback (its frames), not only the message
