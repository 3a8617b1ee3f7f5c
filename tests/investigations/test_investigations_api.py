"""The investigation routes on a server with authentication on (SQLite and PostgreSQL): they ask for
their permissions (reading the ledger ``alerts:read`` and ``events:read``, as it holds the events
the tools read; starting and replaying ``cases:write`` and both of those); bad input is a 4xx naming
the field and the rule; an unknown case or investigation is a 404; without a configured LLM,
starting is a 503 naming the setting; the ledger has no route that changes or deletes an entry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.soc.helpers import MISSING, AuthServer, auth_server

PATHS = "/api/v1/cases/{}/investigations"


@pytest.fixture(scope="module")
def authed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as a:
        yield a


@pytest.fixture
def c(authed: AuthServer) -> Iterator[Any]:
    """A client of the admin."""
    with authed.server.client(headers=authed.admin) as client:
        yield client


@pytest.fixture
def case_id(c: Any) -> str:
    r = c.post("/api/v1/cases", json={"title": "t"})
    assert r.status_code == 201
    return r.json()["id"]


def test_reads_need_alerts_and_events_read_and_starting_needs_cases_write_besides(authed: AuthServer) -> None:
    c = authed.client
    made = c.post("/api/v1/cases", json={"title": "t"}, headers=authed.admin)
    assert made.status_code == 201
    case = made.json()["id"]
    listing, start, replay = PATHS.format(case), PATHS.format(case) + ":start", PATHS.format(case) + ":replay"
    some = "/api/v1/investigations/00000000-0000-4000-8000-000000000000"
    entry = some + ".1"
    for method, path in [("GET", listing), ("GET", some), ("POST", start), ("POST", replay)]:
        assert c.request(method, path).status_code == 401, path
    _, reader = authed.key("alerts:read", "events:read")
    _, writer = authed.key("cases:write", "alerts:read", "events:read")
    assert c.get(listing, headers=reader).status_code == 200
    assert c.get(some, headers=reader).status_code == 404
    assert c.post(start, headers=reader).status_code == 403
    assert c.post(replay, headers=reader).status_code == 403
    _, case_writer = authed.key("cases:write")
    assert c.get(listing, headers=case_writer).status_code == 403  # writing is not reading
    assert c.get(some, headers=case_writer).status_code == 403
    started = c.post(start, headers=writer)
    assert started.status_code == 503 and started.json()["error"]["message"].startswith(
        "llm.enabled"
    )  # allowed, no LLM
    assert c.post(replay, headers=writer).status_code == 404  # allowed, nothing to replay
    # the ledger holds events the tools read: a key that may read alerts but not events reads none of it
    _, alerts_only = authed.key("alerts:read", "cases:write")
    for method, path in [("GET", listing), ("GET", some), ("GET", entry), ("POST", start), ("POST", replay)]:
        r = c.request(method, path, headers=alerts_only)
        assert r.status_code == 403 and "'events:read' required" in r.json()["error"]["message"], path


def message(r: Any) -> str:
    return r.json()["error"]["message"]


def test_without_an_llm_starting_answers_503_naming_the_setting(c: Any, case_id: str) -> None:
    r = c.post(f"/api/v1/cases/{case_id}/investigations:start")
    assert r.status_code == 503
    assert message(r).startswith("llm.enabled: is false")
    assert c.get(f"/api/v1/cases/{case_id}/investigations").json()["investigations"] == []


def test_an_unknown_or_malformed_case_id(c: Any) -> None:
    for method, path, body in [
        ("GET", "/api/v1/cases/{}/investigations", None),
        ("POST", "/api/v1/cases/{}/investigations:replay", {}),
    ]:
        r = c.request(method, path.format(MISSING), json=body)
        assert r.status_code == 404, r.text
        assert message(r) == "case not found"
        r = c.request(method, path.format("not-a-case"), json=body)
        assert r.status_code == 400 and message(r).startswith("case_id: must be a case id")
        r = c.request(method, path.format("ABCDEF00-0000-4000-8000-000000000000"), json=body)
        assert r.status_code == 400


def test_an_unknown_or_malformed_investigation_id(c: Any, case_id: str) -> None:
    assert c.get(f"/api/v1/investigations/{uuid.uuid4()}").status_code == 404
    assert message(c.get(f"/api/v1/investigations/{uuid.uuid4()}.3")) == "ledger entry not found"
    for bad in ("nope", f"{uuid.uuid4()}.0", f"{uuid.uuid4()}.x", f"{uuid.uuid4()}.1234567890"):
        r = c.get(f"/api/v1/investigations/{bad}")
        assert r.status_code == 400, bad
        assert message(r).startswith("id: must be an investigation id")
    r = c.get(f"/api/v1/cases/{case_id}/investigations", params={"investigation_id": "x"})
    assert r.status_code == 400 and message(r).startswith("investigation_id: must be an investigation id")
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": str(uuid.uuid4())})
    assert r.status_code == 404 and message(r) == "investigation not found in this case"
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={})
    assert r.status_code == 404 and "no finished investigation" in message(r)


def test_bad_bodies_and_queries_name_the_field(c: Any, case_id: str) -> None:
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": "x"})
    assert r.status_code == 400 and message(r).startswith("investigation_id: ")
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"other": 1})
    assert r.status_code == 400 and message(r).startswith("other: ")
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", content=b"x" * 5000)
    assert r.status_code == 413
    r = c.post(f"/api/v1/cases/{case_id}/investigations:start", json={"model": "x"})
    assert r.status_code == 400 and message(r).startswith("model: ")
    r = c.get(f"/api/v1/cases/{case_id}/investigations", params={"limit": 201})
    assert r.status_code == 400 and "limit" in message(r)
    r = c.get(f"/api/v1/cases/{case_id}/investigations", params={"cursor": "garbage"})
    assert r.status_code == 400 and message(r).startswith("cursor")
    r = c.get(f"/api/v1/cases/{case_id}/investigations", params={"page": 2})
    assert r.status_code == 400 and "page" in message(r)


def test_the_ledger_is_append_only(c: Any, case_id: str) -> None:
    some = f"{uuid.uuid4()}.1"
    for method in ("PUT", "PATCH", "DELETE"):
        assert c.request(method, f"/api/v1/investigations/{some}").status_code == 405
        assert c.request(method, f"/api/v1/cases/{case_id}/investigations").status_code == 405
