"""``agentwatch sessions``: list, export and delete AOP sessions on a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Agent sessions reported over AOP (list, export, delete)", no_args_is_help=True)
console = Console()

ServerOpt = Annotated[str, typer.Option(help="agentwatch server URL")]
KeyOpt = Annotated[str | None, typer.Option(envvar="AGENTWATCH_API_KEY", help="API key")]
DEFAULT_SERVER = "http://127.0.0.1:7777"


def _client(server: str, api_key: str | None) -> httpx.Client:
    headers = {"X-API-Key": api_key} if api_key else {}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=60)


def _check(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        console.print(f"[red]{r.status_code}: {message}[/red]")
        raise typer.Exit(1)
    return r


@app.command("list")
def list_sessions(
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
    status: Annotated[str | None, typer.Option(help="running, completed, failed, cancelled or timeout")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Sessions, most recently active first."""
    params = {k: v for k, v in {"status": status, "agent": agent, "limit": limit}.items() if v is not None}
    with _client(server, api_key) as c:
        doc = _check(c.get("/sessions", params=params)).json()
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
    console.print(table)


@app.command()
def export(
    session_id: Annotated[str, typer.Argument(help="session id")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write; default stdout")] = None,
) -> None:
    """Write the session's events, exactly as sent, as JSON lines."""
    with _client(server, api_key) as c:
        body = _check(c.get(f"/sessions/{quote(session_id, safe='')}/export")).content
    if output is None:
        sys.stdout.buffer.write(body)
    else:
        output.write_bytes(body)
        lines = body.count(b"\n")
        console.print(f"{lines} events written to {output}")


@app.command()
def delete(
    session_id: Annotated[str, typer.Argument(help="session id")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
    recursive: Annotated[bool, typer.Option(help="also delete its child sessions, recursively")] = False,
) -> None:
    """Delete a session with its events and alerts."""
    with _client(server, api_key) as c:
        params = {"recursive": "true"} if recursive else {}
        doc = _check(c.delete(f"/sessions/{quote(session_id, safe='')}", params=params)).json()
    d = doc["deleted"]
    console.print(f"deleted {d['sessions']} sessions, {d['events']} events, {d['alerts']} alerts")
