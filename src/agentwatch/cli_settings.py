"""Settings for a CLI command: an invalid one is named, never shown as a traceback."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from agentwatch.config import Settings, load_settings, unknown_variables

console = Console(stderr=True, soft_wrap=True, markup=False)  # messages quote what the user gave: no markup
ENV_PREFIX = "AGENTWATCH_"


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """The settings (file, environment, ``overrides`` that are not None), or exit 2 naming each
    invalid one as ``invalid setting <name>: <rule>`` (and the environment variable it came from),
    or each ``AGENTWATCH_*`` variable that names no setting."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    _known_variables_or_exit()
    path = _config_file(config)
    try:
        return load_settings(path, **clean)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            variable = _variable_for(err["loc"], clean)
            if variable:
                message += f" (from the environment variable {variable})"
            console.print(f"invalid setting {where}: {message}" if where else f"invalid settings: {message}")
        raise typer.Exit(2) from None
    except SettingsError as exc:  # a variable holding JSON that does not parse
        found = re.search(r'field "([^"]+)"', str(exc))
        name = found.group(1) if found else ""
        variable = _variable_for((name,), clean) if name else None
        console.print(f"invalid setting {name}: not valid JSON (from the environment variable {variable or '?'})")
        raise typer.Exit(2) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        console.print(f"{_config_source(config)} {path}: not a TOML file ({exc})")
        raise typer.Exit(2) from None


def _known_variables_or_exit() -> None:
    """Exit 2 naming each ``AGENTWATCH_*`` variable that names no setting (and the one it most
    resembles): the settings would ignore it, and a misspelt ``AGENTWATCH_DATABASE_URL`` would
    leave the command on the default store."""
    unknown = unknown_variables(os.environ)
    for name, near in unknown:
        hint = f" (did you mean {near}?)" if near else ""
        console.print(f"unknown environment variable {name}: names no setting{hint}")
    if unknown:
        raise typer.Exit(2)


def _config_file(config: Path | None) -> Path | None:
    """The settings file to read, which must be a readable file: ``$AGENTWATCH_CONFIG`` naming
    no file would otherwise leave every setting at its default without a word."""
    raw = config or os.environ.get("AGENTWATCH_CONFIG")
    if not raw:
        return None
    path = Path(raw)
    problem = None
    if not path.exists():
        problem = "no such file"
    elif not path.is_file():
        problem = "not a file"
    elif not os.access(path, os.R_OK):
        problem = "not readable"
    if problem:
        console.print(f"{_config_source(config)} {path}: {problem}")
        raise typer.Exit(2)
    return path


def _config_source(config: Path | None) -> str:
    return "--config" if config else "AGENTWATCH_CONFIG"


def _variable_for(loc: Sequence[int | str], overrides: dict[str, object]) -> str | None:
    """The environment variable that set the setting at ``loc`` (the longest of its prefixes that
    is set, ``AGENTWATCH_PIPELINE__BATCH_SIZE`` before ``AGENTWATCH_PIPELINE``), unless an option
    of the command set it; the environment outranks the file."""
    if not loc or str(loc[0]) in overrides:
        return None
    present = {name.upper(): name for name in os.environ}
    for end in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(str(part) for part in loc[:end]).upper()
        if name in present:
            return present[name]
    return None


def database_or_exit(settings: Settings) -> None:
    """Connect once to the configured database, or exit with one line naming it (its password
    hidden): 2 for a URL agentwatch cannot use, 1 for a database it cannot reach or open."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from agentwatch.store.engine import make_engine

    url = settings.resolved_database_url()
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        console.print("invalid setting database_url: not a database URL (sqlite:///PATH or postgresql://...)")
        raise typer.Exit(2) from None
    try:
        engine = make_engine(url)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        console.print(
            f"invalid setting database_url: {shown}: not a database agentwatch supports"
            f" (sqlite:///PATH or postgresql://...; {type(exc).__name__})"
        )
        raise typer.Exit(2) from None
    except OSError as exc:
        console.print(f"database {shown}: cannot create its directory ({exc.strerror or exc})")
        raise typer.Exit(1) from None
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        console.print(f"database {shown}: cannot connect ({reason})")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@contextmanager
def schema_or_exit() -> Iterator[None]:
    """Around what migrates the store: a schema this program must not or cannot migrate (a newer
    agentwatch's, another program's, a migration lock held too long) is one line and exit 2."""
    from agentwatch.store.migrate import SchemaError

    try:
        yield
    except SchemaError as exc:
        console.print(str(exc))
        raise typer.Exit(2) from None


def write_whole_or_exit(output: Path, data: bytes) -> None:
    """Replace ``output`` in one step (a temporary file beside it, then a rename), so a reader,
    or a failed or interrupted write, never leaves half a file; a write that fails is one line
    naming ``--output`` and exit 1."""
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, output)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            console.print(f"--output: cannot write {output} ({exc.strerror or exc})", style="red")
            raise typer.Exit(1) from None
        raise


@dataclass
class ServeInputs:
    """What ``agentwatch serve`` was given: the settings file, the options that override it, and
    ``--no-auth``. Each process of a server with ``processes`` above 1 builds its settings from
    the same inputs (and the same environment), so all of them run with the same settings."""

    config: Path | None
    no_auth: bool
    overrides: dict[str, object]

    def settings(self) -> Settings:
        settings = settings_or_exit(self.config, **self.overrides)
        if self.no_auth:
            if not settings.is_loopback:
                console.print("--no-auth refuses to start on a non-loopback address", style="red")
                raise typer.Exit(2)
            settings.auth.enabled = False
        return settings

    def to_json(self) -> bytes:
        return orjson.dumps({"config": self.config, "no_auth": self.no_auth, "overrides": self.overrides}, default=str)

    @classmethod
    def from_json(cls, data: bytes) -> ServeInputs:
        doc = orjson.loads(data)
        return cls(Path(doc["config"]) if doc["config"] else None, bool(doc["no_auth"]), doc["overrides"])


def migrate_once(settings: Settings) -> None:
    """Bring the schema up to date and close the connection."""
    from agentwatch.store.engine import make_engine
    from agentwatch.store.migrate import migrate

    engine = make_engine(settings.resolved_database_url())
    try:
        migrate(engine)
    finally:
        engine.dispose()
