"""Shared helpers of the playbook tests: a server, real alerts, a loopback webhook receiver."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from tests.support.server import RunningServer, free_port, run_server, serve_asgi

PLAYBOOKS = "/api/v1/playbooks"
RECEIVER_HOST = "127.0.0.2"
_serial = itertools.count()


def settings(data_dir: Path, database_url: str, **auth: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth=auth or {"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        playbooks={"allow_private_urls": True, "refresh_s": 0.5},
    )


@contextmanager
def server(data_dir: Path, database_url: str) -> Iterator[RunningServer]:
    with run_server(settings(data_dir, database_url)) as srv:
        yield srv


def unique() -> str:
    return uuid.uuid4().hex[:10]


def make_alert(engine: Any, *, host: str | None = None, severity: int = 6, title: str | None = None) -> str:
    """A real stored alert (the recorder's own store function), with its own dedup key."""
    n = next(_serial)
    host = host or f"pb-host-{n}"
    ent = {"type": "host", "value": host, "id": entity_id("host", host)}
    event = Event(
        body={},
        event_id=f"pb-{uuid.uuid4().hex}",
        event_type="ai.request",
        ts=1000.0 + n,
        received_at=1000.0,
        entities=[ent],
    )
    finding = Finding(
        "atr",
        f"pb-rule-{n}",
        title or f"Playbook alert {n}",
        severity,
        [event],
        alert_type="atr",
        dedup_key=uuid.uuid4().hex,
    )
    ((alert, is_new),) = store_findings(engine, [finding], 300)
    assert is_new
    return alert["id"]


def create(c: Any, steps: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"pb-{unique()}")
    r = c.post(PLAYBOOKS, json={**body, "steps": steps})
    assert r.status_code == 201, r.text
    return r.json()


def execute(c: Any, playbook_id: str, alert_id: str, dry_run: bool = False) -> dict[str, Any]:
    r = c.post(f"{PLAYBOOKS}/{playbook_id}/execute", json={"alert_id": alert_id, "dry_run": dry_run})
    assert r.status_code == 200, r.text
    return r.json()


def alert(c: Any, alert_id: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/alerts/{alert_id}")
    assert r.status_code == 200, r.text
    return r.json()


@contextmanager
def receiver(host: str = RECEIVER_HOST) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on ``host`` (127.0.0.2 unless told): ``/ok`` takes the JSON, ``/fail``
    answers 500, ``/slow`` waits 3 s, ``/big`` answers 200 KiB; ``?delay=S`` on any other path
    records the call as it arrives, then waits S seconds before answering."""
    got: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        delay = request.query_params.get("delay")
        if delay is not None:
            got.append({"path": path, "json": orjson.loads(body), "type": request.headers.get("content-type")})
            await asyncio.sleep(float(delay))
            return Response(b"ok")
        if path == "/fail":
            return Response(b"no", 500)
        if path == "/slow":
            await asyncio.sleep(3)
        if path == "/big":
            return Response(b"x" * 200 * 1024)
        got.append({"path": path, "json": orjson.loads(body), "type": request.headers.get("content-type")})
        return Response(b"ok")

    port = free_port(host)
    with serve_asgi(Starlette(routes=[Route("/{p:path}", hook, methods=["POST"])]), host, port):
        yield f"http://{host}:{port}", got


def calls(got: list[dict[str, Any]], path: str) -> int:
    """How many calls the :func:`receiver` that filled ``got`` took on ``/<path>``."""
    return sum(1 for g in got if g["path"] == f"/{path}")
