"""Fake Splunk, Log Analytics (Sentinel) and Elasticsearch servers on one loopback port.

Each checks the credential header its product expects and records the exact query text it
received, then answers in the product's real response shape: Splunk's export endpoint one JSON
object per line (``{"preview": false, "offset": n, "result": {...}}``), Log Analytics
``{"tables": [{"name", "columns", "rows"}]}``, ES|QL ``{"columns", "values"}``. A query text
holding ``slow`` is answered after ``slow_s``; ``rows`` says how many rows each answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.server import free_port, serve_asgi

SPLUNK_TOKEN = "splunk-secret-token-5f1e"
SENTINEL_TOKEN = "sentinel-secret-token-9a2b"
ELASTIC_KEY = "elastic-secret-key-c3d4"


@dataclass
class Fake:
    url: str
    rows: int = 2
    slow_s: float = 5.0
    got: dict[str, list[str]] = field(default_factory=lambda: {"splunk": [], "sentinel": [], "elastic": []})
    auth: dict[str, list[str]] = field(default_factory=lambda: {"splunk": [], "sentinel": [], "elastic": []})


def _json(doc: object, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def app(fake: Fake) -> Starlette:
    async def slow(query: str) -> None:
        if "slow" in query:
            await asyncio.sleep(fake.slow_s)

    async def splunk(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
        query = form.get("search", "")
        fake.got["splunk"].append(query)
        fake.auth["splunk"].append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != f"Bearer {SPLUNK_TOKEN}":
            return _json({"messages": [{"type": "WARN", "text": "call not properly authenticated"}]}, 401)
        if form.get("output_mode") != "json":
            return _json({"messages": [{"type": "ERROR", "text": "output_mode"}]}, 400)
        await slow(query)
        lines = [
            orjson.dumps({"preview": False, "offset": i, "result": {"host": f"spl-{i}", "_raw": "x"}})
            for i in range(fake.rows)
        ]
        return Response(b"\n".join(lines) + b"\n", media_type="application/json")

    async def sentinel(request: Request) -> Response:
        doc = orjson.loads(await request.body())
        fake.got["sentinel"].append(doc["query"])
        fake.auth["sentinel"].append(request.headers.get("authorization", ""))
        if request.path_params["workspace"] != "ws-1":
            return _json({"error": {"code": "WorkspaceNotFoundError", "message": "workspace not found"}}, 404)
        if request.headers.get("authorization") != f"Bearer {SENTINEL_TOKEN}":
            return _json({"error": {"code": "InvalidAuthenticationToken", "message": "token is invalid"}}, 403)
        await slow(doc["query"])
        columns = [{"name": "Computer", "type": "string"}, {"name": "severity", "type": "long"}]
        return _json(
            {
                "tables": [
                    {"name": "PrimaryResult", "columns": columns, "rows": [[f"kql-{i}", i] for i in range(fake.rows)]}
                ]
            }
        )

    async def elastic(request: Request) -> Response:
        doc = orjson.loads(await request.body())
        fake.got["elastic"].append(doc["query"])
        fake.auth["elastic"].append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != f"ApiKey {ELASTIC_KEY}":
            return _json(
                {"error": {"type": "security_exception", "reason": "unable to authenticate"}, "status": 401}, 401
            )
        await slow(doc["query"])
        if "huge" in doc["query"]:
            return Response(b"[" + b"0," * 100_000 + b"0]", media_type="application/json")
        columns = [{"name": "host.name", "type": "keyword"}, {"name": "event.severity", "type": "long"}]
        return _json({"columns": columns, "values": [[f"es-{i}", i] for i in range(fake.rows)]})

    return Starlette(
        routes=[
            Route("/services/search/jobs/export", splunk, methods=["POST"]),
            Route("/v1/workspaces/{workspace}/query", sentinel, methods=["POST"]),
            Route("/_query", elastic, methods=["POST"]),
        ]
    )


@contextmanager
def fake_siems() -> Iterator[Fake]:
    port = free_port()
    fake = Fake(f"http://127.0.0.1:{port}")
    with serve_asgi(app(fake), "127.0.0.1", port):
        yield fake
