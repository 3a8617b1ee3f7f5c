"""Shared helpers of the approvals tests: a server with authentication on and several people
(two admins, an analyst), each signed in, and API keys made for them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server

APPROVALS = "/api/v1/approvals"
PASSWORD = "correct horse battery staple"


@dataclass
class Person:
    email: str
    headers: dict[str, str]


@dataclass
class People:
    server: RunningServer
    client: httpx.Client
    people: dict[str, Person] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, str]:
        return self.people[name].headers

    def person(self, name: str, role: str) -> dict[str, str]:
        """A new user with ``role``, signed in: the headers that send their token."""
        email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
        self.server.aw.auth.users.create(email, PASSWORD, role)
        r = self.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self.people[name] = Person(email, headers)
        return headers

    def key(self, owner: str, *scopes: str) -> dict[str, str]:
        """A new API key of ``owner`` with ``scopes``: the headers that send it."""
        made = self.client.post("/api/v1/api-keys", headers=self[owner], json={"name": "k", "scopes": list(scopes)})
        assert made.status_code == 201, made.text
        return {"X-API-Key": made.json()["key"]}


def settings(data_dir: Path, database_url: str, **approvals: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, "pack": False},
        playbooks={"allow_private_urls": True, "automatic": True, "refresh_s": 0.5},
        approvals={"expiry_interval_s": 1, **approvals},
        sla={"enabled": False},
    )


@contextmanager
def people_server(data_dir: Path, database_url: str) -> Iterator[People]:
    """A server with ``admin``, ``admin2`` and ``analyst`` signed in."""
    with run_server(settings(data_dir, database_url)) as s, s.client() as c:
        people = People(s, c)
        people.person("admin", "admin")
        people.person("admin2", "admin")
        people.person("analyst", "analyst")
        yield people


def ask(c: httpx.Client, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "response_action",
        "subject": "host build-7",
        "action": "isolate host build-7 from the network",
        "reason": "the agent on build-7 sent credentials to an unknown model endpoint",
    }
    r = c.post(APPROVALS, json={**body, **over}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def decide(c: httpx.Client, headers: dict[str, str], rid: str, verb: str, **body: Any) -> httpx.Response:
    return c.post(f"{APPROVALS}/{rid}:{verb}", json=body or None, headers=headers)
