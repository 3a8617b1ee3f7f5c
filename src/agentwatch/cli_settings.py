"""Settings for a CLI command: an invalid one is named, never shown as a traceback."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from agentwatch.config import Settings, load_settings

console = Console(stderr=True)


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """The settings (file, environment, ``overrides`` that are not None), or exit 2 naming each
    invalid one as ``invalid setting <name>: <rule>``."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_settings(config, **clean)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            console.print(f"invalid setting {where}: {message}" if where else f"invalid settings: {message}")
        raise typer.Exit(2) from None
