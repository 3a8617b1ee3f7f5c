"""Every operation of the OpenAPI document, fed generated input on a real server: no 5xx.

Schemathesis derives requests from the schema the server publishes (valid ones, and ones
that break each declared constraint) and sends them with an administrator's token, so the
requests reach the handlers instead of stopping at the access check. On PostgreSQL this also
covers text the database refuses (NUL characters), which SQLite stores.

Left out: the operations that reach past loopback (scans, webhook settings and their test
send, the LLM gateway), the endless streams, and the operations that would log the token
out or change its password (the logging in, refreshing and logging out are fuzzed apart,
without that token).

Ten examples per operation, the same ones every run (on two cores each backend's run takes
minutes; the two run on different test workers); ``FUZZ_N=200`` asks for that many fresh ones
instead (a longer hunt, by hand).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server

PASSWORD = "fuzz-admin-password-0123"
LEFT_OUT = r"^/(api/scan$|api/scan/stream|api/settings|gateway/|stream$|ws/|api/v1/auth/|api/v1/users/me/password$)"

EXAMPLES = int(os.environ.get("FUZZ_N", "10"))
# the routes whose documented answer on a server without an LLM backend is a 503 saying so
NEED_LLM = {
    "/api/v1/alerts/{alert_id}/explain": "llm: disabled",
    "/api/v1/hunt": "llm: disabled",
    "/api/v1/sigma/rule-suggestions/{pattern_key}": "llm: disabled",
    "/api/v1/cases/{case_id}/investigations:start": "llm.enabled: is false",
}
SAME_EACH_RUN = "FUZZ_N" not in os.environ
pytestmark = pytest.mark.backend_groups

schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=LEFT_OUT)
# Logging in, refreshing and logging out, sent without the administrator's token
credential_schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex=r"^/api/v1/auth/")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[tuple[RunningServer, dict]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    cfg = Settings(
        data_dir=data_dir,
        database_url=module_database_url,
        # no request budget: a 429 would stop the fuzzed requests before their handlers
        auth={"enabled": True, "open_ingest_on_loopback": False, "rate_limit": {"enabled": False}},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as srv:
        srv.aw.auth.users.create("fuzz-admin@example.com", PASSWORD, "admin")
        with srv.client() as c:
            r = c.post("/api/v1/auth/login", json={"email": "fuzz-admin@example.com", "password": PASSWORD})
            assert r.status_code == 200, r.text
            yield srv, {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def api_schema(fuzzed: tuple[RunningServer, dict]) -> Any:
    srv, _ = fuzzed
    return schemathesis.openapi.from_url(srv.url + "/openapi.json")


# One test item holds every operation's examples (some 200 operations): past the suite's 120 s
# per test on a loaded machine, so it gets its own bound.
FUZZ_TIMEOUT_S = 600


@schema.parametrize()
@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=SAME_EACH_RUN)
def test_no_operation_answers_with_a_server_error(case: Any, fuzzed: tuple[RunningServer, dict]) -> None:
    srv, headers = fuzzed
    response = case.call(base_url=srv.url, headers=headers, timeout=30)
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    # answered by the access layer, not the handler: the fuzzing would prove nothing
    assert response.status_code not in (401, 429), where
    if response.status_code == 503 and case.path in NEED_LLM and NEED_LLM[case.path] in response.text:
        return  # the documented answer of these routes on a server without an LLM backend
    assert response.status_code < 500, where
    case.validate_response(response, checks=[not_a_server_error])


@credential_schema.parametrize()
@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=SAME_EACH_RUN)
def test_credential_operations_answer_without_a_server_error(case: Any, fuzzed: tuple[RunningServer, dict]) -> None:
    srv, _ = fuzzed
    response = case.call(base_url=srv.url, timeout=30)
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    assert response.status_code < 500, where
