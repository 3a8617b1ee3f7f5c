"""The dashboard's rendering tests, written for ``node --test`` (a small fake DOM, no npm
packages), run from pytest. Without node they are skipped, except under CI, where a missing
node is a failure."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.web.nodejs import node_command, node_or_skip

ROOT = Path(__file__).resolve().parents[2]
JS_TESTS = Path(__file__).parent / "js"


def test_the_javascript_rendering_tests_pass_under_node() -> None:
    node = node_or_skip()
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert len(files) >= 3
    done = subprocess.run(
        [*node_command(node), "--test", *files], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    passed = re.search(r"^# pass (\d+)$", report, flags=re.M)
    assert passed and int(passed[1]) >= 25, report[-3000:]
    assert re.search(r"^# fail 0$", report, flags=re.M)


def test_without_node_the_tests_skip_locally_and_fail_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no node on it
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        node_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="node is not installed"):
        node_or_skip()
