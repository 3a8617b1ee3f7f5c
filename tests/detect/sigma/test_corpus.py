"""The SigmaHQ corpus proof: >= 95% of the rules compile and every regression sample is matched."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from agentwatch.detect.sigma.cli import DRL_NOTICE, install_rules_cli
from agentwatch.detect.sigma.corpus import CorpusReport, run_corpus
from tests.conftest import SHARED

SIGMAHQ = SHARED / "data" / "sigmahq"


@pytest.fixture(scope="module")
def report() -> CorpusReport:
    return run_corpus(SIGMAHQ / "rules", SIGMAHQ / "regression_data")


def test_at_least_95_percent_of_the_rules_compile(report):
    assert report.files > 3000
    assert report.compile_ratio >= 0.95
    for file, reason in report.failures:  # the rest are listed with a reason
        assert file.endswith(".yml") and reason


def test_every_regression_sample_of_a_compiled_rule_is_matched(report):
    assert len(report.samples) >= 150
    misses = [(s.title, s.reason) for s in report.samples if not s.ok]
    assert misses == []


def test_regexes_run_on_re2(report):
    assert report.regex_engines.get("re2", 0) > 100


def test_rules_test_command_prints_the_report():
    app = typer.Typer()
    install_rules_cli(app)

    @app.command()
    def noop() -> None:  # a second command keeps typer from collapsing the group
        """Placeholder so the command tree has a root."""

    folder = SIGMAHQ / "rules" / "windows" / "registry"
    result = CliRunner().invoke(app, ["rules", "test", str(folder), "--regression", str(SIGMAHQ / "regression_data")])
    assert result.exit_code == 0, result.output
    assert "Sigma corpus report" in result.output
    assert "Detection Rule License" in result.output
    as_json = CliRunner().invoke(
        app, ["rules", "test", str(folder), "--regression", str(SIGMAHQ / "regression_data"), "--json"]
    )
    doc = json.loads(as_json.stdout[as_json.stdout.index("{") :])
    assert doc["compile_ratio"] >= 0.95 and doc["samples"] > 0
    assert doc["samples_matched"] == doc["samples"]
    assert doc["license"] == DRL_NOTICE


def test_rules_test_command_rejects_a_missing_path(tmp_path):
    app = typer.Typer()
    install_rules_cli(app)

    @app.command()
    def noop() -> None:
        """Placeholder."""

    result = CliRunner().invoke(app, ["rules", "test", str(tmp_path / "nope")], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "does not exist" in result.output
