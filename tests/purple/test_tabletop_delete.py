"""Deleting a tabletop session, with authentication on, on SQLite and PostgreSQL: ``DELETE
/api/v1/purple-team/tabletop/{id}`` needs purple:run, answers 204 and the session and its
steps are gone (audited by id); an unknown id is 404, a malformed one 400, a caller without
the permission 403."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from agentwatch.purple import tabletop
from agentwatch.purple.schema import purple_tabletop_steps
from tests.soc.helpers import MISSING, AuthServer, auth_server

TABLETOP = "/api/v1/purple-team/tabletop"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as s:
        yield s


def session(srv: AuthServer, steps: int = 0) -> str:
    c = srv.client
    r = c.post(TABLETOP, headers=srv.admin, json={"title": "Key leak", "scenario": "An agent reads .env"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    for i in range(steps):
        step = {"actor": "red", "action": f"step {i}"}
        assert c.post(f"{TABLETOP}/{sid}/steps", headers=srv.admin, json=step).status_code == 201
    return sid


def steps_stored(srv: AuthServer, sid: str) -> int:
    t = purple_tabletop_steps
    with srv.server.aw.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t).where(t.c.tabletop_id == sid)).scalar_one()


def test_a_runner_deletes_a_session_with_its_steps(srv: AuthServer) -> None:
    c = srv.client
    _, runner = srv.key("purple:run", "rules:read")
    kept, doomed = session(srv, steps=1), session(srv, steps=3)

    r = c.delete(f"{TABLETOP}/{doomed}", headers=runner)

    assert r.status_code == 204 and r.content == b""
    assert c.get(f"{TABLETOP}/{doomed}", headers=srv.admin).status_code == 404
    assert steps_stored(srv, doomed) == 0
    listed = [s["id"] for s in c.get(TABLETOP, headers=srv.admin, params={"limit": 200}).json()["sessions"]]
    assert doomed not in listed and kept in listed
    assert c.get(f"{TABLETOP}/{kept}", headers=srv.admin).json()["step_count"] == 1 and steps_stored(srv, kept) == 1
    step = c.post(f"{TABLETOP}/{doomed}/steps", headers=srv.admin, json={"actor": "red", "action": "late"})
    assert step.status_code == 404 and steps_stored(srv, doomed) == 0
    again = c.delete(f"{TABLETOP}/{doomed}", headers=runner)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NOT_FOUND"
    action = "DELETE /api/v1/purple-team/tabletop/{session_id}"
    rows = [e for e in srv.server.aw.audit.query(action=action) if doomed in e["target"]]
    assert [r["status"] for r in rows] == [404, 204] and rows[-1]["details"] == {"deleted": doomed}


def test_an_unknown_id_is_404_and_a_malformed_one_400(srv: AuthServer) -> None:
    c = srv.client
    r = c.delete(f"{TABLETOP}/{MISSING}", headers=srv.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = c.delete(f"{TABLETOP}/not-an-id", headers=srv.admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("session_id:")


def test_a_reader_without_purple_run_is_403_and_nothing_goes(srv: AuthServer) -> None:
    c = srv.client
    _, reader = srv.key("rules:read")
    sid = session(srv, steps=2)
    r = c.delete(f"{TABLETOP}/{sid}", headers=reader)
    assert r.status_code == 403 and "purple:run" in r.json()["error"]["message"]
    assert c.get(f"{TABLETOP}/{sid}", headers=srv.admin).json()["step_count"] == 2
    assert c.delete(f"{TABLETOP}/{sid}").status_code == 401


def test_a_delete_during_step_appends_leaves_no_step_behind(engine: Engine) -> None:
    """Writers appending steps while the session is deleted: each append lands before the delete
    (and goes with it) or finds no session; no step outlives its session."""
    for _ in range(15):
        sid = tabletop.create(engine, "race", "appends during a delete", [], "t")["id"]
        go = threading.Barrier(5)

        def append(sid: str = sid, go: threading.Barrier = go) -> None:
            go.wait()
            for i in range(6):
                try:
                    if tabletop.add_step(engine, sid, {"actor": "red", "action": f"a{i}"}, "t") is None:
                        return
                except tabletop.Full:
                    pass

        writers = [threading.Thread(target=append) for _ in range(4)]
        for w in writers:
            w.start()
        go.wait()
        time.sleep(0.005)
        assert tabletop.remove(engine, sid)
        for w in writers:
            w.join()
        t = purple_tabletop_steps
        with engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(t).where(t.c.tabletop_id == sid)).scalar_one()
        assert left == 0
        assert tabletop.get(engine, sid) is None
