"""``agentwatch rules test PATH``: the corpus report (compile ratio, failures, regression replay).

SigmaHQ rules are distributed under the Detection Rule License (DRL) 1.1; the report
prints that attribution whenever it lists rules from a SigmaHQ tree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from agentwatch.detect.sigma.corpus import CorpusReport

DRL_NOTICE = (
    "Rules from SigmaHQ (https://github.com/SigmaHQ/sigma) are licensed under the "
    "Detection Rule License (DRL) 1.1; authorship is kept in each rule's 'author' field."
)


def _print_report(console: Console, report: CorpusReport, show: int) -> None:
    table = Table(title="Sigma corpus report", show_header=False)
    table.add_row("rule files", str(report.files))
    table.add_row("compiled", f"{report.compiled_files} ({report.compile_ratio:.2%})")
    table.add_row("not compiled", str(len(report.failures)))
    table.add_row("regexes by engine", ", ".join(f"{k}: {v}" for k, v in sorted(report.regex_engines.items())) or "-")
    passed = report.samples_passed
    table.add_row("regression samples replayed", str(len(report.samples)))
    table.add_row("  matched by their rule", f"{passed} / {len(report.samples)}")
    table.add_row("  match count differs from info.yml", str(sum(1 for s in report.samples if s.count_differs)))
    table.add_row("  skipped (rule not loaded)", str(report.skipped_samples))
    console.print(table)
    if report.failures:
        failed = Table(title="Rules that did not compile", show_lines=False)
        failed.add_column("file", overflow="fold")
        failed.add_column("reason", overflow="fold")
        for file, reason in report.failures[:show]:
            failed.add_row(file, reason)
        console.print(failed)
    for rule_id, reason in report.engine_problems[:show]:
        console.print(f"[yellow]engine problem[/] {rule_id}: {reason}", markup=True, highlight=False)
    misses = [s for s in report.samples if not s.ok]
    if misses:
        miss = Table(title="Regression samples not matched")
        miss.add_column("rule")
        miss.add_column("sample", overflow="fold")
        miss.add_column("reason")
        for s in misses[:show]:
            miss.add_row(s.title, s.sample, s.reason)
        console.print(miss)
    console.print(DRL_NOTICE, style="dim", highlight=False)


def install_rules_cli(app: typer.Typer) -> None:
    """Add the ``rules`` command group (``rules test``) to the ``agentwatch`` command."""
    rules_app = typer.Typer(help="Detection rules: test a rule tree (compile ratio, regression samples).")

    @rules_app.command("test")
    def test(
        paths: Annotated[list[Path], typer.Argument(help="Rule files or folders (e.g. a SigmaHQ 'rules' folder).")],
        regression: Annotated[
            Path | None,
            typer.Option(help="SigmaHQ regression_data folder (default: next to the first PATH)."),
        ] = None,
        show: Annotated[int, typer.Option(min=0, max=100_000, help="Rows to list per table.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        min_ratio: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Exit 1 when fewer rules than this compile.")
        ] = 0.0,
    ) -> None:
        """Load and compile every rule under PATH, replay regression samples, print the report."""
        from agentwatch.detect.sigma.corpus import run_corpus  # the engine: only when a test runs

        for path in paths:
            if not path.exists():
                raise typer.BadParameter(f"{path}: does not exist", param_hint="PATH")
        if regression is not None and not regression.is_dir():
            raise typer.BadParameter(f"{regression}: not a folder", param_hint="--regression")
        console = Console(stderr=as_json)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    label = "loading and compiling rules" if stage == "load" else "replaying regression samples"
                    tasks[stage] = bar.add_task(label, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            report = run_corpus([str(p) for p in paths], regression, progress=progress)
        if as_json:
            doc = {
                "files": report.files,
                "compiled": report.compiled_files,
                "compile_ratio": report.compile_ratio,
                "failures": [{"file": f, "reason": r} for f, r in report.failures],
                "samples": len(report.samples),
                "samples_matched": report.samples_passed,
                "samples_skipped": report.skipped_samples,
                "misses": [s.__dict__ for s in report.samples if not s.ok],
                "regex_engines": report.regex_engines,
                "license": DRL_NOTICE,
            }
            typer.echo(json.dumps(doc, indent=2))
        else:
            _print_report(console, report, show)
        failed = report.compile_ratio < min_ratio or report.samples_passed < len(report.samples)
        raise typer.Exit(1 if failed else 0)

    app.add_typer(rules_app, name="rules")
