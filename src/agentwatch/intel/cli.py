"""``agentwatch intel import``: load a list of indicators from a file into a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import Progress

from agentwatch.cli_server import DEFAULT_SERVER, KeyOpt, ServerOpt, answer, client, console, request
from agentwatch.intel.feeds import entries

app = typer.Typer(help="Threat-intelligence indicators of compromise", no_args_is_help=True)
BATCH = 10_000  # the most one request may carry
MAX_FILE = 256 * 1024 * 1024


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the list")],
    source: Annotated[str, typer.Option(help="the source named on every indicator")] = "file",
    kind: Annotated[
        Literal["ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email"] | None,
        typer.Option("--type", help="the kind of every entry (guessed per entry when left out)"),
    ] = None,
    severity: Annotated[int | None, typer.Option(min=0, max=10, help="0-10 (the server's default)")] = None,
    fmt: Annotated[Literal["lines", "csv"], typer.Option("--format", help="one per line, or a CSV column")] = "lines",
    column: Annotated[int, typer.Option(min=0, max=255, help="csv: the column (0 is the first)")] = 0,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
) -> None:
    """Send every entry of PATH to the server (10,000 a request); print what it stored and refused."""
    if path.stat().st_size > MAX_FILE:
        raise typer.BadParameter(f"larger than {MAX_FILE // (1024 * 1024)} MiB", param_hint="PATH")
    found = entries(path.read_bytes(), fmt, column)
    if not found:
        console.print(f"no entries in {path}")
        raise typer.Exit(1)
    extra = {k: v for k, v in {"type": kind, "severity": severity}.items() if v is not None}
    totals = {"created": 0, "updated": 0, "rejected": 0}
    shown = 0
    with client(server, api_key) as c, Progress(console=console, transient=True) as progress:
        task = progress.add_task("importing", total=len(found))
        for start in range(0, len(found), BATCH):
            items = [{"value": v, "source": source, **extra} for v in found[start : start + BATCH]]
            r = request(c, "POST", "/api/v1/intel/iocs", json={"iocs": items}, refused_ok=True)
            if r.status_code == 400:  # no entry of this batch is an indicator
                totals["rejected"] += len(items)
            else:
                doc = answer(r, "created", "updated", "rejected", "errors")
                for key in totals:
                    totals[key] += doc[key]
                for err in doc["errors"][: max(0, 10 - shown)]:
                    console.print(f"entry {start + err['index'] + 1}: {err['reason']}")
                    shown += 1
            progress.advance(task, len(items))
    typer.echo(f"{totals['created']} created, {totals['updated']} updated, {totals['rejected']} refused")
