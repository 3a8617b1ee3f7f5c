"""Log output: what a traceback may show."""

from __future__ import annotations

import logging

import pytest
import structlog

from agentwatch.logs import configure


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_never_shows_local_variables(fmt, capsys):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_structlog = structlog.get_config()
    try:
        configure("INFO", fmt)

        def login(password: str) -> None:
            raise RuntimeError("check failed")

        secret = "-".join(["hunter2", "do", "not", "log"])  # never whole in the source a traceback quotes
        try:
            login(secret)
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        err = capsys.readouterr().err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.configure(**saved_structlog)
    assert "Exception in ASGI application" in err and "RuntimeError: check failed" in err
    assert "hunter2-do-not-log" not in err
    assert ", in login" in err  # the whole traceback (its frames), not only the message
