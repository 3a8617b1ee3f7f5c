"""The ``agentwatch`` command starts without loading the server, the store or the rule engines:
each command imports what it works with when it runs, so ``agentwatch --help``, ``version`` and
a mistyped option answer at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What only some commands need; each took a tenth of a second or more to import.
HEAVY = (
    "fastapi",  # the server
    "uvicorn",
    "sqlalchemy",  # the store
    "httpx",  # the commands that talk to a server
    "pydantic_settings",  # the settings
    "agentwatch.detect.sigma.engine",  # the rule engines
    "agentwatch.discovery.scanner",
    "agentwatch.app",
)

PROBE = """
import sys
from typer.testing import CliRunner
from agentwatch.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
heavy = {heavy!r}
print(result.exit_code)
print(",".join(m for m in heavy if m in sys.modules))
"""


def _loaded_after(*args: str) -> tuple[int, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split("\n")
    return int(out[0]), [m for m in out[1].split(",") if m]


@pytest.mark.parametrize(
    "args",
    [["--help"], ["version"], ["scan", "--help"], ["rules", "test", "--help"], ["users", "--help"]],
)
def test_the_command_answers_without_loading_the_server_or_the_store(args: list[str]) -> None:
    code, loaded = _loaded_after(*args)
    assert code == 0
    assert loaded == []


def test_a_command_that_needs_the_settings_still_loads_them() -> None:
    # the check above would pass for a probe that saw nothing: this command must read the settings
    code, loaded = _loaded_after("config")
    assert code == 0
    assert "pydantic_settings" in loaded
