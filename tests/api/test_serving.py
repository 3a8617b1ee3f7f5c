"""The server's event loop: connection resets nobody retrieved are not logged as errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agentwatch.api.serving import quiet_unretrieved_resets

UNRETRIEVED = "Future exception was never retrieved"


@pytest.mark.parametrize("exc", [ConnectionResetError(104, "reset by peer"), BrokenPipeError()])
def test_an_unretrieved_connection_reset_is_not_an_error(caplog, exc):
    loop = asyncio.new_event_loop()
    try:
        quiet_unretrieved_resets(loop)
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            loop.call_exception_handler({"message": UNRETRIEVED, "exception": exc})
        assert not [r for r in caplog.records if r.name == "asyncio"]
    finally:
        loop.close()


@pytest.mark.parametrize(
    "context",
    [
        {"message": UNRETRIEVED, "exception": RuntimeError("a real bug")},
        {"message": "Task exception was never retrieved", "exception": ConnectionResetError()},
    ],
)
def test_every_other_loop_error_still_reaches_the_log(caplog, context):
    loop = asyncio.new_event_loop()
    try:
        quiet_unretrieved_resets(loop)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler(context)
        assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == [context["message"]]
    finally:
        loop.close()
