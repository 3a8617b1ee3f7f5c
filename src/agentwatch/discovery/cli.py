"""``agentwatch scan``: scan from the command line, no server needed."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# The scanner and its parts are imported by the command when it runs (``agentwatch --help``
# loads none of them).
console = Console(stderr=True, soft_wrap=True)  # one line per message, whatever the width
FORMATS = ("table", "json", "csv", "sarif")
OPTIONS = {"read_timeout": "--timeout", "concurrency": "--concurrency", "ports": "--ports"}  # setting -> option


def _table(result: dict[str, Any]) -> Table:
    table = Table(title=f"{result['summary']['total_agents']} agent(s) on {escape(result['target_network'])}")
    for col in ("address", "port", "proto", "type", "framework", "level", "score", "signals"):
        table.add_column(col)
    for a in result["agents"]:
        table.add_row(
            escape(a["ip_address"]),
            str(a["port"]),
            escape(a["protocol"]),
            escape(a["agent_type"]),
            escape(str(a["framework"])),
            a["confidence_level"],
            f"{a['confidence_score']:.2f}",
            escape(", ".join(sorted({s["signal_type"] for s in a["signals"]}))),
        )
    return table


def install(app: typer.Typer) -> None:
    @app.command()
    def scan(
        target: Annotated[str, typer.Argument(help="CIDR network or comma-separated addresses, e.g. 10.0.0.0/24")],
        detectors: Annotated[str | None, typer.Option(help="comma-separated detectors (default: all)")] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv | sarif")] = "table",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="write the result to this file")] = None,
        every: Annotated[
            float | None,
            typer.Option(
                help="keep scanning every SECONDS (continuous mode); on stdout json and sarif print each round"
                " as one compact document per line (NDJSON), csv its header once",
                min=1,
            ),
        ] = None,
        ports: Annotated[str | None, typer.Option(help="comma-separated ports (default: the AI port list)")] = None,
        timeout: Annotated[float | None, typer.Option(help="read timeout in seconds")] = None,
        concurrency: Annotated[int | None, typer.Option(help="global connection budget", min=1, max=10_000)] = None,
        config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)] = None,
    ) -> None:
        """Find AI agents, MCP servers and LLM servers on a network (allowlisted ranges only).

        With --every and no --output, each round of json or sarif is one compact document on one
        line of stdout (NDJSON); csv prints its header once, then the rows of every round.
        """
        from pydantic import ValidationError

        from agentwatch.cli_settings import settings_or_exit, write_whole_or_exit
        from agentwatch.discovery.allowlist import TargetError, parse_targets
        from agentwatch.discovery.output import render
        from agentwatch.discovery.scanner import DetectorError, resolve_detectors
        from agentwatch.logs import configure

        if fmt not in FORMATS:
            raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
        if output is not None:
            _check_output(output)
        full = settings_or_exit(config)
        configure(full.log_level, full.log_format)
        settings = full.discovery
        updates: dict[str, Any] = {}
        if timeout is not None:
            updates["read_timeout"] = timeout
        if concurrency is not None:
            updates["concurrency"] = concurrency
        if ports:
            try:
                updates["ports"] = [int(p) for p in ports.split(",") if p.strip()]
            except ValueError:
                raise typer.BadParameter("must be comma-separated integers", param_hint="--ports") from None
        try:
            settings = settings.model_validate({**settings.model_dump(), **updates})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err.get("loc") else ""
            message = str(err["msg"]).removeprefix("Value error, ")
            raise typer.BadParameter(message, param_hint=OPTIONS.get(field, field or None)) from None
        try:
            targets = parse_targets(
                target, allowed=settings.allowed_networks, max_hosts=settings.max_hosts, field="target"
            )
            active, passive = resolve_detectors(detectors)
        except (TargetError, DetectorError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
        known: dict[str, dict[str, Any]] = {}
        first_seen: dict[str, str] = {}
        rounds = 0
        while True:
            result = _quietly(lambda: asyncio.run(_run(settings, active, targets, passive)))
            for a in result["agents"]:
                a["first_seen"] = first_seen.setdefault(a["id"], a["first_seen"])
            current = {a["id"]: a for a in result["agents"]}
            if every is not None and known:
                for aid in current.keys() - known.keys():
                    a = current[aid]
                    console.print(f"[green]new[/green] {escape(a['framework'])} at {a['ip_address']}:{a['port']}")
                for aid in known.keys() - current.keys():
                    a = known[aid]
                    console.print(f"[yellow]gone[/yellow] {escape(a['framework'])} at {a['ip_address']}:{a['port']}")
            known = current
            if fmt == "table" and output is None:
                Console().print(_table(result))
            elif output is not None:
                write_whole_or_exit(output, render(result, "json" if fmt == "table" else fmt).encode())
            elif every is None:
                typer.echo(render(result, fmt))
            else:
                typer.echo(_round_text(result, fmt, first=rounds == 0), nl=False)
            if every is None:
                return
            rounds += 1
            time.sleep(every)


def _round_text(result: dict[str, Any], fmt: str, *, first: bool) -> str:
    """One round of a continuous scan on stdout, so that the rounds together still read as one
    stream: json and sarif as one compact document on one line (NDJSON), csv as rows under the
    header printed with the first round."""
    from agentwatch.discovery.output import render

    text = render(result, fmt)
    if fmt == "csv":
        return text if first else text.split("\n", 1)[1]
    return orjson.dumps(orjson.loads(text)).decode() + "\n"


def _quietly(scan: Any) -> Any:
    """Run ``scan`` with httpx's per-request log lines off (one per probe would bury the progress
    bar), and put its level back after: the command may run inside another program."""
    httpx_log = logging.getLogger("httpx")
    previous = httpx_log.level
    httpx_log.setLevel(logging.WARNING)
    try:
        return scan()
    finally:
        httpx_log.setLevel(previous)


def _check_output(output: Path) -> None:
    """Refuse an output path that cannot be written before scanning, not after."""
    if output.is_dir():
        raise typer.BadParameter(f"{output} is a directory", param_hint="--output")
    if not output.parent.is_dir():
        raise typer.BadParameter(f"directory {output.parent} does not exist", param_hint="--output")


async def _run(settings: Any, detectors: list[str], targets: Any, passive: list[str]) -> dict[str, Any]:
    from agentwatch.discovery.report import scan_result
    from agentwatch.discovery.scanner import Scanner

    with Progress(
        TextColumn("scan"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[agents]} agents"),
        TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("scan", total=len(targets.hosts()), agents=0)

        def on_progress(done: int, total: int, agents: int) -> None:
            progress.update(task, completed=done, agents=agents)

        outcome = await Scanner(settings, detectors).scan(targets, on_progress=on_progress)
    stats = dict(outcome.stats)
    if passive:
        stats["detectors_unavailable"] = passive
    return scan_result(
        scan_id=outcome.scan_id,
        started_at=outcome.started_at,
        completed_at=outcome.completed_at,
        target=outcome.target,
        agents=outcome.agents,
        detectors=outcome.detectors,
        status="completed",
        stats=stats,
    )
