"""Finding node for the dashboard's JavaScript tests: skipped without it, except under CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed: the dashboard's JavaScript tests need it in CI")
        pytest.skip("node is not installed")
    return node


def node_command(node: str) -> list[str]:
    """node, with the flag that lets node before 20.19 / 22.7 load the dashboard's ``.js``
    files as the ES modules they are."""
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    assert match, f"unexpected node --version: {out!r}"
    major, minor = int(match[1]), int(match[2])
    if major < 20 or (major == 20 and minor < 10):
        pytest.fail(f"node {out.strip()} is too old: the tests need node 20.10 or later")
    if (major == 20 and minor < 19) or major == 21 or (major == 22 and minor < 7):
        return [node, "--experimental-detect-module"]
    return [node]
