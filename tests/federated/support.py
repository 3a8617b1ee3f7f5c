"""The federated tests' server: authentication on, targets pointing at the fake SIEMs, events
in its store, and the credentials the fakes expect in the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentwatch.config import Settings
from agentwatch.events.model import Event
from agentwatch.store import events as event_store
from tests.federated.fakes import ELASTIC_KEY, SENTINEL_TOKEN, SPLUNK_TOKEN, Fake, fake_siems
from tests.soc.helpers import PASSWORD, AuthServer
from tests.support.server import free_port, run_server

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
ENV = {
    "AW_TEST_FED_SPLUNK": SPLUNK_TOKEN,
    "AW_TEST_FED_SENTINEL": SENTINEL_TOKEN,
    "AW_TEST_FED_ELASTIC": ELASTIC_KEY,
    "AW_TEST_FED_WRONG": "not-the-token",
}


def targets(fake: Fake) -> list[dict[str, Any]]:
    remote = {"url": fake.url, "allow_private": True}
    dead = f"http://127.0.0.1:{free_port()}"
    return [
        {"name": "splunk", "kind": "splunk", **remote, "index": "agents", "credential_env": "AW_TEST_FED_SPLUNK"},
        {
            "name": "sentinel",
            "kind": "sentinel",
            **remote,
            "workspace": "ws-1",
            "table": "AgentEvents",
            "field_map": {"host": "Computer"},
            "credential_env": "AW_TEST_FED_SENTINEL",
        },
        {
            "name": "elastic",
            "kind": "elastic",
            **remote,
            "index": "logs-agents",
            "credential_env": "AW_TEST_FED_ELASTIC",
        },
        {"name": "local", "kind": "agentwatch_local"},
        {
            "name": "elastic-slow",
            "kind": "elastic",
            **remote,
            "index": "slow-agents",
            "credential_env": "AW_TEST_FED_ELASTIC",
            "timeout_s": 0.5,
        },
        {"name": "splunk-wrong", "kind": "splunk", **remote, "credential_env": "AW_TEST_FED_WRONG"},
        {
            "name": "sentinel-unset",
            "kind": "sentinel",
            **remote,
            "workspace": "ws-1",
            "table": "T",
            "credential_env": "AW_TEST_FED_NEVER_SET",
        },
        {
            "name": "elastic-huge",
            "kind": "elastic",
            **remote,
            "index": "huge",
            "credential_env": "AW_TEST_FED_ELASTIC",
            "max_response_bytes": 1024,
        },
        {
            "name": "elastic-cap",
            "kind": "elastic",
            **remote,
            "index": "capped",
            "credential_env": "AW_TEST_FED_ELASTIC",
            "max_rows": 1,
        },
        {"name": "dead", "kind": "elastic", "url": dead, "allow_private": True, "index": "x"},
    ]


def event(n: int, host: str, severity: int, ts: float) -> Event:
    return Event(
        body={"host": {"hostname": host}, "process": {"pid": 100 + n, "name": "python3"}},
        event_id=f"fed-{n}",
        event_type="process.exec",
        ts=ts,
        received_at=ts,
        severity=severity,
        agent="coder",
    )


@contextmanager
def federated_server(database_url: str, data_dir: Path) -> Iterator[tuple[AuthServer, Fake]]:
    """A server whose own client sends an ``events:read`` key; ``AuthServer.client`` sends none."""
    os.environ.update(ENV)
    try:
        with fake_siems() as fake:
            cfg = Settings(
                data_dir=data_dir,
                database_url=database_url,
                auth={"enabled": True, "open_ingest_on_loopback": False},
                detection={"atr_bundled": False, "pack": False},
                federated={"targets": targets(fake)},
            )
            with run_server(cfg) as s, s.client() as c:
                s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
                token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
                authed = AuthServer(s, c, {"Authorization": f"Bearer {token.json()['access_token']}"})
                _, reader = authed.key("events:read")
                s.headers.update(reader)
                event_store.commit_batch(
                    s.aw.engine,
                    [
                        event(1, "build-01", 8, T0 + 60),
                        event(2, "build-02", 2, T0 + 120),
                        event(3, 'we"ird\nhost', 9, T0 + 180),
                        event(4, "build-03", 9, T0 - 3600),  # before the time range
                    ],
                )
                yield authed, fake
    finally:
        for name in ENV:
            os.environ.pop(name, None)
