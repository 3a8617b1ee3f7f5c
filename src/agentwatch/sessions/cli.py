"""``agentwatch sessions``: list, export and delete AOP sessions on a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import orjson
import typer
from rich.console import Console
from rich.table import Table

from agentwatch.cli_server import DEFAULT_SERVER, KeyOpt, ServerOpt, answer, client, console, request

app = typer.Typer(help="Agent sessions reported over AOP (list, export, delete)", no_args_is_help=True)
STATUSES = ("running", "completed", "failed", "cancelled", "timeout")


@app.command("list")
def list_sessions(
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
    status: Annotated[str | None, typer.Option(help="running, completed, failed, cancelled or timeout")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print the server's answer as JSON on stdout")] = False,
) -> None:
    """Sessions, most recently active first."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="--status")
    params = {k: v for k, v in {"status": status, "agent": agent, "limit": limit}.items() if v is not None}
    with client(server, api_key) as c:
        doc = answer(request(c, "GET", "/sessions", params=params), "total", "sessions")
    if as_json:
        typer.echo(orjson.dumps(doc).decode())
        return
    table = Table(title=f"{doc['total']} sessions")
    for col in ("id", "agent", "status", "steps", "tokens", "last seen", "goal"):
        table.add_column(col)
    for s in doc["sessions"]:
        table.add_row(
            s["id"],
            s["agent_id"],
            s["status"],
            str(s["total_steps"]),
            str(s["total_tokens"]),
            s["last_seen_at"],
            (s["goal"] or "")[:60],
        )
    Console(markup=False).print(table)  # ids, agents and goals are what agents sent


@app.command()
def export(
    session_id: Annotated[str, typer.Argument(help="session id")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write; default stdout")] = None,
) -> None:
    """Write the session's events, exactly as sent, as JSON lines."""
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        problem = "is a directory" if output.is_dir() else f"directory {output.parent} does not exist"
        raise typer.BadParameter(f"{output}: {problem}", param_hint="--output")
    with client(server, api_key) as c:
        body = request(c, "GET", f"/sessions/{quote(session_id, safe='')}/export").content
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    from agentwatch.cli_settings import write_whole_or_exit

    write_whole_or_exit(output, body)
    lines = body.count(b"\n")
    console.print(f"{lines} events written to {output}", highlight=False)


@app.command()
def delete(
    session_id: Annotated[str, typer.Argument(help="session id")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
    recursive: Annotated[bool, typer.Option(help="also delete its child sessions, recursively")] = False,
) -> None:
    """Delete a session with its events and alerts."""
    with client(server, api_key) as c:
        params = {"recursive": "true"} if recursive else {}
        doc = answer(request(c, "DELETE", f"/sessions/{quote(session_id, safe='')}", params=params), "deleted")
    d = doc["deleted"]
    typer.echo(f"deleted {d['sessions']} sessions, {d['events']} events, {d['alerts']} alerts")
