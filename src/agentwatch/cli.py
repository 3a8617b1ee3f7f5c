"""The ``agentwatch`` command."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from agentwatch import __version__
from agentwatch.cli_settings import settings_or_exit
from agentwatch.config import Settings

app = typer.Typer(help="agentwatch: security and observability for AI agents", no_args_is_help=True)
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)]


def _settings(config: Path | None, **overrides: object) -> Settings:
    return settings_or_exit(config, **overrides)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the effective settings (file + environment + defaults), secrets masked."""
    typer.echo(orjson.dumps(_settings(config).masked(), option=orjson.OPT_INDENT_2).decode())


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 7777)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="data directory (default ~/.agentwatch)")] = None,
    database_url: Annotated[str | None, typer.Option(help="sqlite:///... or postgresql://...")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="disable authentication (loopback only)")] = False,
    role: Annotated[
        str | None, typer.Option(help="standalone | api | worker (scale-out over NATS JetStream, needs nats_url)")
    ] = None,
    nats_url: Annotated[str | None, typer.Option(help="nats://host:4222 for --role api|worker")] = None,
) -> None:
    """Run the server (API, pipeline, live streams)."""
    import uvicorn

    from agentwatch.api.factory import create_app
    from agentwatch.api.serving import uvicorn_options
    from agentwatch.app import Agentwatch
    from agentwatch.logs import configure

    if role is not None and role not in ("standalone", "api", "worker"):
        raise typer.BadParameter("must be standalone, api or worker", param_hint="--role")
    overrides: dict[str, object] = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "database_url": database_url,
        "nats_url": nats_url,
        # validated with the rest (a role other than standalone needs nats_url)
        "pipeline": {"role": role} if role is not None else None,
    }
    settings = _settings(config, **overrides)
    if no_auth:
        if not settings.is_loopback:
            console.print("[red]--no-auth refuses to start on a non-loopback address[/red]")
            raise typer.Exit(2)
        settings.auth.enabled = False
    configure(settings.log_level, settings.log_format)
    aw = Agentwatch(settings)
    api = create_app(aw)
    uvicorn.run(
        api,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.pipeline.shutdown_drain_s),
        **uvicorn_options(),
    )


def _replay_lines(path: Path) -> list[tuple[int, bytes]]:
    """The event lines of a JSONL file, each with its line number in the file (from 1)."""
    lines = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith((b"#", b"//")):
            lines.append((number, s))
    return lines


def _event_time(line: bytes) -> float | None:
    from agentwatch.events.model import EventError, parse_ts

    try:
        ts = orjson.loads(line).get("ts")
        return parse_ts(ts) if ts else None
    except (orjson.JSONDecodeError, AttributeError, EventError):
        return None


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL file of events")],
    server: Annotated[str, typer.Option(help="agentwatch server URL")] = "http://127.0.0.1:7777",
    speed: Annotated[float, typer.Option(help="0 = as fast as possible; 1 = original pace; 2 = twice as fast")] = 0.0,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="events per request when not paced")] = 1000,
    api_key: Annotated[str | None, typer.Option(envvar="AGENTWATCH_API_KEY", help="API key")] = None,
) -> None:
    """Feed a JSONL file of events through the ingest API (comments and blank lines skipped)."""
    if speed < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--speed")
    lines = _replay_lines(file)
    headers = {"Content-Type": "application/x-ndjson"}
    if api_key:
        headers["X-API-Key"] = api_key
    accepted = rejected = 0
    errors: list[dict[str, object]] = []
    with (
        httpx.Client(base_url=server, headers=headers, timeout=60) as client,
        Progress(
            TextColumn("replay"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("replay", total=len(lines))
        groups: list[list[tuple[int, bytes]]]
        if speed > 0:
            groups = [[line] for line in lines]
        else:
            groups = [lines[i : i + batch] for i in range(0, len(lines), batch)]
        first_ts: float | None = None
        started = time.monotonic()
        for group in groups:
            if speed > 0:
                ts = _event_time(group[0][1])
                if ts is not None:
                    first_ts = ts if first_ts is None else first_ts
                    delay = (ts - first_ts) / speed - (time.monotonic() - started)
                    if delay > 0:
                        time.sleep(delay)
            r = client.post("/api/v1/ingest", content=b"\n".join(line for _, line in group))
            if r.status_code >= 400:
                console.print(f"[red]server answered {r.status_code}: {r.text[:500]}[/red]")
                raise typer.Exit(1)
            doc = r.json()
            accepted += doc["accepted"]
            rejected += doc["rejected"]
            for err in doc["errors"]:
                err["line"] = group[int(err["index"])][0]  # the index is the item's place in this request
                errors.append(err)
            progress.advance(task, len(group))
    for err in errors[:20]:
        console.print(f"line {err['line']}: {err['field']}: {err['reason']}")
    typer.echo(orjson.dumps({"accepted": accepted, "rejected": rejected}).decode())
    if rejected:
        raise typer.Exit(1)


def _install_capabilities() -> None:
    import importlib

    from agentwatch.builtins import CAPABILITIES

    for module in CAPABILITIES:
        importlib.import_module(module).install_cli(app)


_install_capabilities()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
