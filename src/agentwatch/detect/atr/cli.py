"""``agentwatch atr test [PATH]``: run the embedded test cases of ATR-format rules through our engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def install(app: typer.Typer) -> None:
    atr_app = typer.Typer(help="Agent-threat rules (ATR format): the bundled set and agentwatch's pack.")
    app.add_typer(atr_app, name="atr")

    @atr_app.command("test")
    def test(
        path: Annotated[
            Path | None, typer.Argument(help="a rule file or directory; default: agentwatch's own rule pack")
        ] = None,
    ) -> None:
        """Check every true positive fires its rule and every true negative does not."""
        from agentwatch.detect.atr.rules import RuleError, load_dir, load_file
        from agentwatch.detect.atr.testcases import run_cases
        from agentwatch.detect.pack import RULES_DIR

        console = Console()
        target = path or RULES_DIR
        try:
            if target.is_dir():
                rules, errors = load_dir(target)
            else:
                rules, errors = load_file(target), []
        except (OSError, RuleError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        table = Table("rule", "cases", "passed", "failed")
        failed_total = 0
        for rule in rules:
            results = run_cases(rule)
            failed = [r for r in results if not r.passed]
            failed_total += len(failed)
            table.add_row(rule.id, str(len(results)), str(len(results) - len(failed)), str(len(failed)))
            for r in failed:
                console.print(f"[red]FAIL[/red] {rule.id} {r.kind}[{r.index}] {r.description}")
        console.print(table)
        for file, error in errors:
            console.print(f"[red]error[/red] {file}: {error}")
        if failed_total or errors:
            raise typer.Exit(1)
