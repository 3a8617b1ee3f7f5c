"""Fake Splunk, Log Analytics (Sentinel) and Elasticsearch servers on one loopback port.

Each checks the credential header its product expects and records the exact query text it
received, then answers in the product's real response shape: Splunk's export endpoint one JSON
object per line (``{"preview": false, "offset": n, "result": {...}}``), Log Analytics
``{"tables": [{"name", "columns", "rows"}]}``, ES|QL ``{"columns", "values"}``. A query text
holding ``slow`` is answered after ``slow_s``; ``rows`` says how many rows each answers. A query
text holding ``leak`` is answered with rows that carry secrets (:data:`LEAKS`); one holding
``failing`` (Elasticsearch) with an error whose message quotes one.
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
# Secrets a SIEM's rows can hold, each in a shape the masking knows.
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLXNlY3JldA"
LEAKS = {
    "bearer": f"GET /v1/models HTTP/1.1 Authorization: Bearer {JWT}",
    "query": "GET /cb?access_token=leaked-query-token-77 HTTP/1.1",
    "assigned": "mysql -u root password=leaked-password-88 -h db",
    "aws": "export AWS_KEY=AKIAIOSFODNN7EXAMPLE",
}
LONG_RAW = "x" * 70_000 + " password=past-the-cut-99"


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
        results = [{"host": f"spl-{i}", "_raw": "x"} for i in range(fake.rows)]
        if "leak" in query:
            results = [
                {"host": "spl-0", "_raw": LEAKS["bearer"], "tag": ["ok", LEAKS["assigned"]], "count": "3"},
                {"host": "spl-1", "_raw": LONG_RAW, "db_password": "plain-column-secret"},
            ]
        lines = [orjson.dumps({"preview": False, "offset": i, "result": r}) for i, r in enumerate(results)]
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
        rows = [[f"kql-{i}", i] for i in range(fake.rows)]
        if "leak" in doc["query"]:
            rows = [[LEAKS["query"], 5]]
        return _json({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]})

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
        values = [[f"es-{i}", i] for i in range(fake.rows)]
        if "failing" in doc["query"]:  # an error message that quotes a leaked value
            reason = f"line 1: unknown column [{LEAKS['assigned']}]"
            return _json({"error": {"type": "verification_exception", "reason": reason}, "status": 400}, 400)
        if "leak" in doc["query"]:
            values = [[LEAKS["aws"], 7]]
        return _json({"columns": columns, "values": values})

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
