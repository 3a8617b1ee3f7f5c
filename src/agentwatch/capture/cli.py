"""The capture commands: ``agentwatch sensor`` and ``agentwatch prices refresh``."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console

if TYPE_CHECKING:
    from agentwatch.capture.settings import SensorSettings

console = Console(stderr=True, soft_wrap=True, markup=False)  # messages quote what the user gave: no markup
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
    """Watch this host: process exec/exit, outbound connections, watched files, AI agent processes.

    Stops after --duration or on SIGTERM (exit 0) or Ctrl-C (exit 130), having sent what was
    pending or kept it in the buffer; a JSON summary goes to stdout.
    """
    from agentwatch.capture.sensor.runner import LIMITATIONS, run_sensor
    from agentwatch.cli_settings import settings_or_exit
    from agentwatch.logs import configure
    from agentwatch.net.ssrf import SSRFError, check_url

    if duration is not None and not duration > 0:
        raise typer.BadParameter("must be more than 0 seconds", param_hint="--duration")
    try:
        check_url(server, allow_private=True, resolve=False)
    except SSRFError as exc:
        console.print(f"--server: {exc}", style="red")
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
        sensor_settings = _sensor_settings(sensor_settings, updates)
    buffer = buffer_dir or settings.data_dir / "sensor-buffer"
    try:
        buffer.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        console.print(f"--buffer-dir: cannot create {buffer} ({exc.strerror or exc})", style="red")
        raise typer.Exit(2) from None
    if os.geteuid() != 0:
        console.print("running without root; this sensor cannot see:", style="yellow")
        for line in LIMITATIONS[2:3]:
            console.print(f"  - {line}")
    run = run_sensor(
        sensor_settings,
        server,
        api_key or os.environ.get("AGENTWATCH_API_KEY"),
        buffer,
        duration,
        on_ready=lambda watches: console.print(f"agentwatch sensor: ready ({watches} watches) -> {server}"),
    )
    typer.echo(orjson.dumps(run.stats).decode())
    if run.interrupted:  # Ctrl-C: what was pending was sent or kept in the buffer, as on SIGTERM
        console.print(f"sensor stopped: interrupted; {run.stats['sent']} event(s) sent", style="red")
        raise typer.Exit(130)


SENSOR_OPTIONS = {"watched_paths": "--watch", "poll_interval_s": "--poll-interval"}


def _sensor_settings(current: SensorSettings, updates: dict[str, object]) -> SensorSettings:
    """``current`` with the command's options applied, or a usage error naming the option."""
    try:
        return current.model_validate({**current.model_dump(), **updates})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        option = SENSOR_OPTIONS.get(str(err["loc"][0]) if err["loc"] else "", "--watch")
        raise typer.BadParameter(str(err["msg"]).removeprefix("Value error, "), param_hint=option) from None


@prices_app.command("refresh")
def prices_refresh(
    from_file: Annotated[
        str | None,
        typer.Option("--from", help="OISP bundle JSON to install (- for stdin); default: the packaged bundle"),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)] = None,
) -> None:
    """Install a newer provider/price bundle into the data directory (or reset to the packaged one)."""
    from agentwatch.capture import cost
    from agentwatch.cli_settings import settings_or_exit

    source = _bundle_source(from_file)
    settings = settings_or_exit(config)
    data_dir = Path(settings.data_dir)
    try:
        if source is None:
            (data_dir / cost.BUNDLE_NAME).unlink(missing_ok=True)
            cost.load_bundle.cache_clear()
            cost.PriceTable.cache_clear()
            doc = cost.packaged_bundle()
            stats = {
                "models": len(doc["models"]),
                "providers": len(doc["providers"]),
                "version": doc.get("bundle_version"),
            }
            typer.echo(orjson.dumps({"source": "packaged", **stats}).decode())
            return
        stats = _install_bundle(data_dir, source)
    except cost.BundleError as exc:
        console.print(f"--from: {exc}", style="red")
        raise typer.Exit(2) from None
    except OSError as exc:
        console.print(f"data_dir {data_dir}: cannot write the bundle ({exc.strerror or exc})", style="red")
        raise typer.Exit(1) from None
    typer.echo(orjson.dumps({"source": "stdin" if from_file == "-" else from_file, **stats}).decode())


def _bundle_source(from_file: str | None) -> Path | bytes | None:
    """The bundle to install: a file, the bytes of standard input (``-``), or None (the packaged one)."""
    if from_file is None:
        return None
    if from_file == "-":
        return sys.stdin.buffer.read()
    path = Path(from_file)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise typer.BadParameter(f"{from_file!r} {problem}", param_hint="--from")
    return path


def _install_bundle(data_dir: Path, source: Path | bytes) -> dict[str, object]:
    from agentwatch.capture import cost

    if isinstance(source, Path):
        return cost.refresh(data_dir, source)
    with tempfile.TemporaryDirectory() as tmp:  # refresh validates and installs a file
        staged = Path(tmp) / "bundle.json"
        staged.write_bytes(source)
        return cost.refresh(data_dir, staged)
