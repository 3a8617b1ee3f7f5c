"""``agentwatch atr test``: the embedded test cases of ATR-format rules, run as a command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from agentwatch.detect.pack import RULES_DIR


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_pack_passes_and_a_wrong_case_fails(tmp_path: Path):
    ok = run("atr", "test")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "AW-TOOL-001" in ok.stdout and "FAIL" not in ok.stdout
    doc = yaml.safe_load((RULES_DIR / "aw-tool-destructive.yaml").read_text())
    doc["test_cases"]["true_negatives"].append({"description": "wrongly filed", "tool_args": "rm -rf /"})
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    failed = run("atr", "test", str(bad))
    assert failed.returncode == 1
    assert "FAIL AW-TOOL-003 true_negative[2] wrongly filed" in failed.stdout
    missing = run("atr", "test", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
