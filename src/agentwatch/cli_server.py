"""What the commands that talk to a running server share: the ``--server`` and ``--api-key``
options, the client, and errors and foreign answers reported in one line (exit 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:  # imported where a command talks to a server: ``agentwatch --help`` needs none of it
    import httpx

# diagnostics, one line each (no markup: a message quotes what the user or the server gave);
# what a command prints for scripts goes to stdout
console = Console(stderr=True, soft_wrap=True, markup=False)

ServerOpt = Annotated[str, typer.Option(help="agentwatch server URL")]
KeyOpt = Annotated[str | None, typer.Option(envvar="AGENTWATCH_API_KEY", help="API key")]
DEFAULT_SERVER = "http://127.0.0.1:7777"


def client(server: str, api_key: str | None) -> httpx.Client:
    import httpx

    try:
        url = httpx.URL(server.rstrip("/"))
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(str(exc), param_hint="--server") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise typer.BadParameter("must be an http:// or https:// URL", param_hint="--server")
    headers = {"X-API-Key": api_key} if api_key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def request(c: httpx.Client, method: str, path: str, *, refused_ok: bool = False, **kw: object) -> httpx.Response:
    """The server's answer, or exit 1 naming why there is none (unreachable, timed out) or
    what it refused (any 4xx or 5xx; with ``refused_ok``, a 400 is returned to the caller)."""
    import httpx

    try:
        r = c.request(method, path, **kw)  # type: ignore[arg-type]
        return r if refused_ok and r.status_code == 400 else check(r)
    except httpx.TransportError as exc:
        console.print(f"cannot reach the server ({exc or type(exc).__name__})", style="red")
        raise typer.Exit(1) from None


def answer(r: httpx.Response, *keys: str) -> dict:  # type: ignore[type-arg]
    """The JSON object the server answered, holding ``keys``; anything else (a proxy's page, another
    service on that port) is named in one line, exit 1."""
    try:
        doc = r.json()
        if isinstance(doc, dict) and all(k in doc for k in keys):
            return doc
    except ValueError:
        pass
    kind = r.headers.get("content-type", "no content type")
    console.print(f"the server's answer is not an agentwatch answer ({r.status_code}, {kind}): is --server right?")
    raise typer.Exit(1)


def check(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        console.print(f"{r.status_code}: {' '.join(str(message).split())}", style="red")
        raise typer.Exit(1)
    return r
