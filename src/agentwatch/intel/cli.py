"""``agentwatch intel import``: load a list of indicators from a file into a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import typer
from rich.progress import Progress

from agentwatch.cli_server import DEFAULT_SERVER, KeyOpt, ServerOpt, answer, client, console, request

if TYPE_CHECKING:
    import httpx

app = typer.Typer(help="Threat-intelligence indicators of compromise", no_args_is_help=True)
BATCH = 10_000  # the most items one request may carry
# the most bytes a batch's items take: the server takes bodies up to 4 MiB (api.MAX_BODY),
# and a list of long URLs passes that well before 10,000 entries
BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024
MAX_FILE = 256 * 1024 * 1024


def batches(items: list[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(index of the first, items) of each request: at most BATCH items and BATCH_BYTES of JSON."""
    start, size, batch = 0, 0, []
    for item in items:
        length = len(orjson.dumps(item)) + 1
        if batch and (len(batch) == BATCH or size + length > BATCH_BYTES):
            yield start, batch
            start, size, batch = start + len(batch), 0, []
        batch.append(item)
        size += length
    if batch:
        yield start, batch


def _refusals(r: httpx.Response) -> list[dict[str, Any]]:
    """The refused entries a 400 names (its ``details.errors``); none when it names none."""
    try:
        errors = r.json()["error"]["details"]["errors"]
    except (ValueError, KeyError, TypeError):
        return []
    ok = isinstance(errors, list) and all(isinstance(e, dict) and isinstance(e.get("index"), int) for e in errors)
    return errors if ok else []


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
    """Send every entry of PATH to the server (10,000 or 4 MiB a request); print what it stored and refused."""
    from agentwatch.intel.feeds import FeedError, entries  # the store's schema: only when a file is sent

    if path.stat().st_size > MAX_FILE:
        raise typer.BadParameter(f"larger than {MAX_FILE // (1024 * 1024)} MiB", param_hint="PATH")
    try:
        found = entries(path.read_bytes(), fmt, column)
    except FeedError as exc:
        raise typer.BadParameter(str(exc), param_hint="PATH") from None
    if not found:
        console.print(f"no entries in {path}")
        raise typer.Exit(1)
    extra = {k: v for k, v in {"type": kind, "severity": severity}.items() if v is not None}
    totals = {"created": 0, "updated": 0, "rejected": 0}
    shown = 0
    with client(server, api_key) as c, Progress(console=console, transient=True) as progress:
        task = progress.add_task("importing", total=len(found))
        for start, items in batches([{"value": v, "source": source, **extra} for v in found]):
            r = request(c, "POST", "/api/v1/intel/iocs", json={"iocs": items}, refused_ok=True)
            if r.status_code == 400:  # no entry of this batch is an indicator
                totals["rejected"] += len(items)
                errors = _refusals(r)
            else:
                doc = answer(r, "created", "updated", "rejected", "errors")
                for key in totals:
                    totals[key] += doc[key]
                errors = doc["errors"]
            for err in errors[: max(0, 10 - shown)]:
                console.print(f"entry {start + err['index'] + 1}: {err.get('reason')}")
                shown += 1
            progress.advance(task, len(items))
    typer.echo(f"{totals['created']} created, {totals['updated']} updated, {totals['rejected']} refused")
