"""What the breach-notice tests share: a webhook receiver on loopback that can be told to fail,
settings naming it as the breach output, and stored alerts made in the past."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.config import Settings
from agentwatch.store.alerts_schema import alerts
from tests.soc.helpers import make_alert
from tests.support.server import free_port, serve_asgi


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)  # the deliveries it accepted
    hits: int = 0  # every request, accepted or not
    failing: bool = False  # answer 503 with a Retry-After of an hour (final for an output)

    def notices(self) -> list[dict[str, Any]]:
        """The breach notices it accepted, in order."""
        return [n for b in self.bodies for n in b["alerts"] if n.get("type") == "sla_breach"]


@contextmanager
def receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    port = free_port(host)
    got = Receiver(f"http://{host}:{port}/hook")

    async def hook(request: Request) -> Response:
        got.hits += 1
        body = await request.body()
        if got.failing:
            return Response(status_code=503, headers={"Retry-After": "3600"})
        got.bodies.append(orjson.loads(body))
        return Response(status_code=204)

    with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host, port):
        yield got


def notify_settings(data_dir: Path, database_url: str, url: str | None, **sla: Any) -> Settings:
    """Authentication off, a webhook output ``soc`` at ``url`` (when given), and ``sla`` as given."""
    return outputs_settings(data_dir, database_url, {} if url is None else {"soc": url}, **sla)


def outputs_settings(data_dir: Path, database_url: str, urls: dict[str, str], **sla: Any) -> Settings:
    """Authentication off, a webhook output of each name of ``urls`` at its URL, and ``sla`` as given."""
    outputs = [{"kind": "webhook", "name": name, "url": url} for name, url in urls.items()]
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False, "outputs": outputs, "outputs_allow_private": True},
        sla=sla,
    )


def old_alert(engine: Any, severity: int, age_s: float, tags: str | None = None) -> str:
    """A stored alert of ``severity`` made ``age_s`` seconds ago (optionally with ``tags``, JSON)."""
    aid = make_alert(engine, severity)
    values: dict[str, Any] = {"created_at": time.time() - age_s}
    if tags is not None:
        values["tags"] = tags
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == aid).values(**values))
    return aid
