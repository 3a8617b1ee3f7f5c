"""Shared helpers of the cases tests: real alerts in the store, a case made through the API."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from tests.support.server import run_server

MISSING = "00000000-0000-4000-8000-000000000000"
PASSWORD = "correct horse battery staple"
_serial = itertools.count()


def make_alert(engine: Any, severity: int = 6) -> str:
    """A real stored alert (through the recorder's store function), each with its own dedup key."""
    n = next(_serial)
    ent = {"type": "host", "value": f"h{n}", "id": entity_id("host", f"h{n}")}
    event = Event(
        body={}, event_id=f"case-e{n}", event_type="ai.request", ts=1000.0 + n, received_at=1000.0, entities=[ent]
    )
    finding = Finding("atr", f"rule-{n}", f"Alert {n}", severity, [event], alert_type="atr", dedup_key=f"case-{n}")
    ((alert, is_new),) = store_findings(engine, [finding], 300)
    assert is_new
    return alert["id"]


def create(c: Any, **body: Any) -> dict[str, Any]:
    body.setdefault("title", "Suspicious model use")
    r = c.post("/api/v1/cases", json=body)
    assert r.status_code == 201, r.text
    return r.json()


class AuthServer:
    """A server with authentication on, an admin signed in, and API keys made on demand."""

    def __init__(self, server: Any, client: Any, admin: dict[str, str]) -> None:
        self.server, self.client, self.admin = server, client, admin

    def key(self, *scopes: str) -> tuple[str, dict[str, str]]:
        """A new API key with ``scopes``: its id, and the headers that send it."""
        made = self.client.post("/api/v1/api-keys", headers=self.admin, json={"name": "k", "scopes": list(scopes)})
        assert made.status_code == 201, made.text
        return made.json()["id"], {"X-API-Key": made.json()["key"]}


@contextmanager
def auth_server(database_url: str, data_dir: Path, **sections: Any) -> Iterator[AuthServer]:
    """``sections``: more settings (``approvals={...}``) beside authentication on."""
    cfg = Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        # the bundled ATR set and rule pack take seconds of CPU to compile, beside the tests
        detection={"atr_bundled": False, "pack": False},
        **sections,
    )
    with run_server(cfg) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        yield AuthServer(s, c, {"Authorization": f"Bearer {token['access_token']}"})
