"""A server with authentication on, Web Push allowed to reach the fake push service on loopback
over http, and users of chosen roles signed in on demand."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agentwatch.config import Settings
from tests.push.fake_push import FakePushService, fake_push_service
from tests.support.server import RunningServer, run_server

PASSWORD = "correct horse battery staple"
KEY = "/api/v1/push/vapid-public-key"
SUBS = "/api/v1/push/subscriptions"
TEST = "/api/v1/push/test"
_serial = itertools.count()


@dataclass
class PushEnv:
    server: RunningServer
    client: httpx.Client
    fake: FakePushService
    admin: dict[str, str]

    def user(self, role: str) -> tuple[str, dict[str, str]]:
        """A new user with ``role``, signed in: its id and the headers that send its token."""
        email = f"user{next(_serial)}-{role}@example.com"
        made = self.server.aw.auth.users.create(email, PASSWORD, role)
        token = self.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert token.status_code == 200, token.text
        return made.id, {"Authorization": f"Bearer {token.json()['access_token']}"}

    def subscribe(self, headers: dict[str, str], name: str, **extra: Any) -> tuple[Any, dict[str, Any]]:
        """A new device of the fake service, subscribed for the user behind ``headers``."""
        dev = self.fake.device(name)
        r = self.client.post(SUBS, json=dev.subscription(**extra), headers=headers)
        assert r.status_code == 201, r.text
        return dev, r.json()


def push_settings(data_dir: Path, database_url: str, **push: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, "pack": False},
        push={"allow_http": True, "allow_private": True, **push},
    )


@contextmanager
def push_env(data_dir: Path, database_url: str, **push: Any) -> Iterator[PushEnv]:
    with fake_push_service() as fake, run_server(push_settings(data_dir, database_url, **push)) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        fake.public_key = c.get(KEY, headers=admin).json()["public_key"]
        yield PushEnv(s, c, fake, admin)
