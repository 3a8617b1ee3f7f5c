"""Deleting uploaded evidence, with authentication on, on SQLite and PostgreSQL: ``DELETE
/api/v1/compliance/evidence/{id}`` needs compliance:write, answers 204 and the item is gone
(audited by id); an unknown id is 404, a malformed one 400, a caller without the permission 403."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compliance.helpers import EVIDENCE, document, link
from tests.soc.helpers import MISSING, AuthServer, auth_server

READ = ("rules:read", "alerts:read")


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as s:
        yield s


def upload(srv: AuthServer, body: dict) -> str:
    r = srv.client.post(EVIDENCE, headers=srv.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_writer_deletes_evidence_and_it_is_gone(srv: AuthServer) -> None:
    c = srv.client
    _, writer = srv.key("compliance:write", *READ)
    kept, doomed = upload(srv, link("LLM09")), upload(srv, document("LLM09"))

    r = c.delete(f"{EVIDENCE}/{doomed}", headers=writer)

    assert r.status_code == 204 and r.content == b""
    assert c.get(f"{EVIDENCE}/{doomed}", headers=srv.admin).status_code == 404
    listed = c.get(EVIDENCE, headers=srv.admin, params={"control_id": "LLM09"}).json()["evidence"]
    assert [e["id"] for e in listed] == [kept]
    again = c.delete(f"{EVIDENCE}/{doomed}", headers=writer)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NOT_FOUND"
    action = "DELETE /api/v1/compliance/evidence/{evidence_id}"
    rows = [e for e in srv.server.aw.audit.query(action=action) if doomed in e["target"]]
    assert [r["status"] for r in rows] == [404, 204] and rows[-1]["details"] == {"deleted": doomed}


def test_an_unknown_id_is_404_and_a_malformed_one_400(srv: AuthServer) -> None:
    c = srv.client
    r = c.delete(f"{EVIDENCE}/{MISSING}", headers=srv.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = c.delete(f"{EVIDENCE}/not-an-id", headers=srv.admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("evidence_id:")


def test_a_reader_without_compliance_write_is_403_and_nothing_goes(srv: AuthServer) -> None:
    c = srv.client
    _, reader = srv.key(*READ)
    item = upload(srv, link("LLM01"))
    r = c.delete(f"{EVIDENCE}/{item}", headers=reader)
    assert r.status_code == 403 and "compliance:write" in r.json()["error"]["message"]
    assert c.get(f"{EVIDENCE}/{item}", headers=srv.admin).status_code == 200
    assert c.delete(f"{EVIDENCE}/{item}").status_code == 401
