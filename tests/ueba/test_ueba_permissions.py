"""With authentication on: every UEBA read needs ``alerts:read``, a reset ``alerts:write``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentwatch.config import Settings
from tests.soc.helpers import PASSWORD, AuthServer
from tests.support.server import run_server
from tests.ueba.helpers import host_id

READS = [
    "/api/v1/ueba/anomalies",
    "/api/v1/ueba/baselines",
    "/api/v1/ueba/stats",
    "/api/v1/anomaly/timeline",
]
MISSING = [
    f"/api/v1/ueba/anomalies/{host_id('x')}",
    f"/api/v1/ueba/baselines/{host_id('x')}",
    f"/api/v1/entities/{host_id('x')}/baseline",
]


@contextmanager
def auth_server(database_url: str, data_dir: Path) -> Iterator[AuthServer]:
    """Authentication on, an admin signed in; the bundled rule sets off (they load slowly)."""
    cfg = Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        yield AuthServer(s, c, {"Authorization": f"Bearer {token['access_token']}"})


def test_reads_need_alerts_read_and_a_reset_alerts_write(database_url: str, tmp_path: Path) -> None:
    reset = f"/api/v1/ueba/baselines/{host_id('x')}"
    with auth_server(database_url, tmp_path) as a:
        c = a.client
        _, events_only = a.key("events:read")
        _, reader = a.key("alerts:read")
        _, writer = a.key("alerts:read", "alerts:write")
        for path in READS + MISSING:
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=events_only).status_code == 403, path
        for path in READS:
            assert c.get(path, headers=reader).status_code == 200, path
        for path in MISSING:
            assert c.get(path, headers=reader).status_code == 404, path
        assert c.delete(reset).status_code == 401
        assert c.delete(reset, headers=reader).status_code == 403
        assert c.delete(reset, headers=writer).status_code == 404  # allowed; nothing to reset
