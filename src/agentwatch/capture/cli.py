"""The capture commands: ``agentwatch sensor`` and ``agentwatch prices refresh``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

console = Console(stderr=True)
prices_app = typer.Typer(help="the model price table used to cost LLM responses", no_args_is_help=True)


def install(app: typer.Typer) -> None:
    app.command("sensor")(sensor)
    app.add_typer(prices_app, name="prices")


def sensor(
    server: Annotated[str, typer.Option(help="agentwatch server that receives the events")] = "http://127.0.0.1:7777",
    api_key: Annotated[
        str | None, typer.Option(help="agentwatch API key with events:write (default: $AGENTWATCH_API_KEY)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)] = None,
    watch: Annotated[list[str] | None, typer.Option(help="path to watch (repeatable; replaces the defaults)")] = None,
    poll_interval: Annotated[float | None, typer.Option(help="seconds between process/connection polls")] = None,
    buffer_dir: Annotated[Path | None, typer.Option(help="on-disk buffer (default: <data_dir>/sensor-buffer)")] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: run until stopped)")
    ] = None,
) -> None:
    """Watch this host: process exec/exit, outbound connections, watched files, AI agent processes."""
    from agentwatch.capture.sensor.runner import LIMITATIONS, run_sensor
    from agentwatch.cli_settings import settings_or_exit
    from agentwatch.logs import configure
    from agentwatch.net.ssrf import SSRFError, check_url

    try:
        check_url(server, allow_private=True, resolve=False)
    except SSRFError as exc:
        console.print(f"[red]--server: {exc}[/red]")
        raise typer.Exit(2) from None
    settings = settings_or_exit(config)
    configure(settings.log_level, settings.log_format)
    sensor_settings = settings.capture.sensor
    updates: dict[str, object] = {}
    if watch:
        updates["watched_paths"] = watch
    if poll_interval is not None:
        updates["poll_interval_s"] = poll_interval
    if updates:
        sensor_settings = sensor_settings.model_validate({**sensor_settings.model_dump(), **updates})
    if os.geteuid() != 0:
        console.print("[yellow]running without root; this sensor cannot see:[/yellow]")
        for line in LIMITATIONS[2:3]:
            console.print(f"  - {line}")
    stats = run_sensor(
        sensor_settings,
        server,
        api_key or os.environ.get("AGENTWATCH_API_KEY"),
        buffer_dir or settings.data_dir / "sensor-buffer",
        duration,
        on_ready=lambda watches: console.print(f"agentwatch sensor: ready ({watches} watches) -> {server}"),
    )
    typer.echo(orjson.dumps(stats).decode())


@prices_app.command("refresh")
def prices_refresh(
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="OISP bundle JSON to install; default: the packaged bundle", exists=True),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)] = None,
) -> None:
    """Install a newer provider/price bundle into the data directory (or reset to the packaged one)."""
    from agentwatch.capture import cost
    from agentwatch.cli_settings import settings_or_exit

    settings = settings_or_exit(config)
    data_dir = Path(settings.data_dir)
    if from_file is None:
        target = data_dir / cost.BUNDLE_NAME
        target.unlink(missing_ok=True)
        cost.load_bundle.cache_clear()
        cost.PriceTable.cache_clear()
        doc = cost.packaged_bundle()
        stats = {"models": len(doc["models"]), "providers": len(doc["providers"]), "version": doc.get("bundle_version")}
        typer.echo(orjson.dumps({"source": "packaged", **stats}).decode())
        return
    try:
        stats = cost.refresh(data_dir, from_file)
    except cost.BundleError as exc:
        console.print(f"[red]--from: {exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(orjson.dumps({"source": str(from_file), **stats}).decode())
