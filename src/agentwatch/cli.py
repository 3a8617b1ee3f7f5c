"""The ``agentwatch`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console

from agentwatch import __version__

# The settings (pydantic) and everything a command works with are imported by the commands
# that need them: ``agentwatch --help`` and ``agentwatch version`` load none of it.
if TYPE_CHECKING:
    from agentwatch.config import Settings

# Plain click errors: "Error: Invalid value for '--port': ..." on one line (rich draws a box and wraps the
# message at 80 columns, which a script or a log reads as several lines).
app = typer.Typer(
    help="agentwatch: security and observability for AI agents", no_args_is_help=True, rich_markup_mode=None
)
# a message stays one line, whatever the width; no markup: it quotes what the user or the server gave
console = Console(stderr=True, soft_wrap=True, markup=False)

UVICORN_STARTUP_FAILURE = 3  # uvicorn's exit status when it could not start (a port in use)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)]


def _settings(config: Path | None, **overrides: object) -> Settings:
    from agentwatch.cli_settings import settings_or_exit

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
    processes: Annotated[
        int | None, typer.Option(help="server processes sharing the socket and the store (default 1)")
    ] = None,
) -> None:
    """Run the server (API, pipeline, live streams)."""
    import uvicorn

    from agentwatch.api.factory import create_app
    from agentwatch.api.serving import uvicorn_options
    from agentwatch.app import Agentwatch
    from agentwatch.cli_settings import ServeInputs, database_or_exit, migrate_once, schema_or_exit
    from agentwatch.logs import configure

    if role is not None and role not in ("standalone", "api", "worker"):
        raise typer.BadParameter("must be standalone, api or worker", param_hint="--role")
    inputs = ServeInputs(
        config=config,
        no_auth=no_auth,
        overrides={
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "database_url": database_url,
            "nats_url": nats_url,
            "processes": processes,
            # validated with the rest (a role other than standalone needs nats_url)
            "pipeline": {"role": role} if role is not None else None,
        },
    )
    settings = inputs.settings()
    _data_dir_or_exit(settings.data_dir)
    database_or_exit(settings)
    configure(settings.log_level, settings.log_format)
    if settings.processes > 1:
        from agentwatch.processes.supervisor import serve_processes

        with schema_or_exit():
            migrate_once(settings)  # here, so that the processes do not all try at once
        raise typer.Exit(serve_processes(settings, inputs))
    with schema_or_exit():
        aw = Agentwatch(settings)
    api = create_app(aw)
    try:
        uvicorn.run(
            api,
            host=settings.host,
            port=settings.port,
            timeout_graceful_shutdown=int(settings.pipeline.shutdown_drain_s),
            **uvicorn_options(),
        )
    except SystemExit as exc:
        if exc.code == UVICORN_STARTUP_FAILURE:  # logged above, e.g. the port is taken
            raise typer.Exit(1) from None
        raise


def _data_dir_or_exit(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        console.print(f"invalid setting data_dir: cannot create {data_dir} ({exc.strerror or exc})")
        raise typer.Exit(2) from None


@app.command()
def replay(
    file: Annotated[str, typer.Argument(metavar="FILE", help="JSONL file of events, plain or gzip (- for stdin)")],
    server: Annotated[str, typer.Option(help="agentwatch server URL")] = "http://127.0.0.1:7777",
    speed: Annotated[float, typer.Option(help="0 = as fast as possible; 1 = original pace; 2 = twice as fast")] = 0.0,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="events per request when not paced")] = 1000,
    api_key: Annotated[str | None, typer.Option(envvar="AGENTWATCH_API_KEY", help="API key")] = None,
) -> None:
    """Feed a JSONL file of events (gzip or plain) through the ingest API (comments and blank lines skipped)."""
    import httpx

    from agentwatch import replay as replay_io

    if speed < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--speed")
    url = replay_io.server_url(server)
    tally = replay_io.ReplayTally()
    lines = replay_io.replay_lines(replay_io.read_input(file), tally)
    headers = {"Content-Type": "application/x-ndjson"}
    if api_key:
        headers["X-API-Key"] = api_key
    stopped: str | None = None
    with replay_io.CtrlC() as ctrl_c, httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        try:
            replay_io.send_groups(client, replay_io.groups(lines, speed, batch), speed, tally, ctrl_c.stop)
        except KeyboardInterrupt:  # a second Ctrl-C outside a request
            stopped = "interrupted"
        except replay_io.ReplayInterrupted as exc:
            stopped = "interrupted"
            if exc.in_flight:
                first, last = exc.in_flight
                stopped += f"; the request for lines {first}-{last} was abandoned unanswered (it may be stored)"
        except replay_io.ReplayStopped as exc:
            stopped = str(exc)
    replay_io.report_errors(tally)
    typer.echo(orjson.dumps(tally.summary(finished=stopped is None)).decode())
    if stopped is not None:
        done = f"lines 1-{tally.through_line} were answered" if tally.through_line else "no line was answered"
        console.print(f"replay stopped: {stopped}; {done}, the rest was not sent", style="red")
        raise typer.Exit(130 if stopped.startswith("interrupted") else 1)
    if tally.rejected:
        raise typer.Exit(1)


def _install_capabilities() -> None:
    import importlib

    from agentwatch.builtins import CAPABILITIES

    for module in CAPABILITIES:  # a capability without commands has no install_cli
        install = getattr(importlib.import_module(module), "install_cli", None)
        if install is not None:
            install(app)


_install_capabilities()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
