"""The UEBA routes fed generated input (schemathesis, as ``tests/api/test_openapi_fuzz.py`` does
for every route) on a real server with an administrator's token: no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server

PASSWORD = "ueba-fuzz-password-0123"
OURS = r"^/api/v1/(ueba/|anomaly/timeline$|entities/\{entity_uuid\}/baseline$)"

schema = schemathesis.pytest.from_fixture("ueba_schema").include(path_regex=OURS)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[tuple[RunningServer, dict]]:
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        database_url=module_database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False, "rate_limit": {"enabled": False}},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as srv:
        srv.aw.auth.users.create("fuzz@example.com", PASSWORD, "admin")
        with srv.client() as c:
            r = c.post("/api/v1/auth/login", json={"email": "fuzz@example.com", "password": PASSWORD})
            assert r.status_code == 200, r.text
            yield srv, {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def ueba_schema(fuzzed: tuple[RunningServer, dict]) -> Any:
    return schemathesis.openapi.from_url(fuzzed[0].url + "/openapi.json")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_ueba_route_answers_with_a_server_error(case: Any, fuzzed: tuple[RunningServer, dict]) -> None:
    srv, headers = fuzzed
    response = case.call(base_url=srv.url, headers=headers, timeout=30)
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    assert response.status_code not in (401, 403, 429), where
    assert response.status_code < 500, where
    case.validate_response(response, checks=[not_a_server_error])
