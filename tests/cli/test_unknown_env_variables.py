"""An ``AGENTWATCH_*`` variable that names no setting stops a command that loads the settings: a
typo (``AGENTWATCH_DATABSE_URL``) used to run, silently, on the default store.

The variables agentwatch reads outside the settings (``config.OTHER_VARIABLES``) stay accepted,
and so does every ``AGENTWATCH_*`` name this repository's code, tests, scripts and docs use.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentwatch.config import OTHER_VARIABLES, unknown_variables
from tests.cli.test_cli_hunt import run

ROOT = Path(__file__).resolve().parents[2]
TYPO = "AGENTWATCH_" + "DATABSE_URL"  # spelled apart so the scan of the repository below skips it


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles(tmp_path):
    for args in (["config"], ["users", "list"], ["serve"], ["scan", "127.0.0.1"]):
        ran = run(args, tmp_path, env={TYPO: f"sqlite:///{tmp_path / 'other.db'}"})
        assert ran.code == 2, (args, ran.stderr)
        assert f"unknown environment variable {TYPO}" in ran.stderr, ran.stderr
        assert "did you mean AGENTWATCH_DATABASE_URL?" in ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1 and ran.stdout == ""
    assert not (tmp_path / "agentwatch.db").exists()  # nothing ran on the default store


def test_a_nested_variable_is_checked_to_its_last_key(tmp_path):
    wrong = "AGENTWATCH_PIPELINE__" + "BATCH_SIZ"
    ran = run(["config"], tmp_path, env={wrong: "500"})
    assert ran.code == 2 and f"{wrong}: names no setting" in ran.stderr
    assert "did you mean AGENTWATCH_PIPELINE__BATCH_SIZE?" in ran.stderr
    far = "AGENTWATCH_" + "XYZZY"
    nothing_near = run(["config"], tmp_path, env={far: "1"})
    assert nothing_near.code == 2 and f"unknown environment variable {far}: names no setting" in nothing_near.stderr
    assert "did you mean" not in nothing_near.stderr


def test_settings_and_the_other_variables_are_accepted(tmp_path):
    env = {
        "AGENTWATCH_PIPELINE__BATCH_SIZE": "500",
        "agentwatch_port": "7000",  # the settings read names in any case
        "AGENTWATCH_CAPTURE__ROUTES__GROQ__PROVIDER": "openai_compatible",  # a key of a table of routes
        "AGENTWATCH_CAPTURE__ROUTES__GROQ__BASE_URL": "https://api.groq.com/openai",
        **dict.fromkeys(OTHER_VARIABLES, ""),
    }
    ran = run(["config"], tmp_path, env=env)
    assert ran.code == 0, ran.stderr
    assert '"batch_size": 500' in ran.stdout and '"port": 7000' in ran.stdout
    assert {"AGENTWATCH_SDK_SPILL", "AGENTWATCH_API_KEY", "AGENTWATCH_CONFIG"} <= OTHER_VARIABLES


def test_commands_that_load_no_settings_are_not_stopped(tmp_path):
    assert run(["version"], tmp_path, env={TYPO: "x"}).code == 0


@pytest.mark.parametrize("name", ["AGENTWATCH_PORT__X", "AGENTWATCH_CORS_ORIGINS__0", "AGENTWATCH_"])
def test_below_a_plain_setting_nothing_is_known(name):
    assert [found for found, _near in unknown_variables({name: "1"})] == [name]


README_TYPOS = {"AGENTWATCH_DATABSE_URL", "AGENTWATCH_PIPELINE__BATCH_SIZ"}


def test_every_name_the_repository_uses_is_accepted():
    """Tests, scripts and benchmarks set these in the environment of the commands they run."""
    files = [
        *ROOT.glob("src/**/*.py"),
        *ROOT.glob("tests/**/*.py"),
        *ROOT.glob("bench/**/*.py"),
        *ROOT.glob("scripts/*"),
        *ROOT.glob(".ci/*"),
        *ROOT.glob("docs/**/*.md"),
        ROOT / "README.md",
    ]
    names: set[str] = set()
    for path in files:
        if path.is_file() and path != Path(__file__):
            text = path.read_text(errors="replace")
            names |= {m.rstrip("_") for m in re.findall(r"AGENTWATCH_[A-Za-z0-9_]*", text)}
    names.discard("AGENTWATCH")  # the prefix alone, as in AGENTWATCH_*
    assert len(names) > 20
    # the README shows how a misspelt name is refused: those two must stay unknown
    assert [name for name, _ in unknown_variables(dict.fromkeys(README_TYPOS, ""))] == sorted(README_TYPOS)
    assert unknown_variables(dict.fromkeys(names - README_TYPOS, "")) == []
