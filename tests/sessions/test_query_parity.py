"""``/sessions`` answers the same on SQLite and PostgreSQL, whatever the database's collation,
and refuses a query parameter it does not know.

Production PostgreSQL databases are often created with a linguistic collation (``en_US.UTF-8``
or an ICU locale) where the test databases use ``C.UTF-8``; the third store here is such a
database (ICU ``en-US``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.sessions.aop import ev
from tests.support.server import RunningServer, open_settings, run_server
from tests.support.services import PG_ADMIN, database_for, drop_postgres_database, require_service

# ids a linguistic collation orders otherwise than code points (case, punctuation, accents)
IDS = ["Sess-b", "sess-a", "sess_c", "sess.d", "SESS-e", "s1", "s10", "s2", "a b", "ä-x", "z", "Z", "_x", "-y"]


def icu_database() -> Iterator[str]:
    import psycopg

    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"aw_test_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_collation WHERE collprovider = 'i' LIMIT 1").fetchone():
            pytest.skip("this PostgreSQL has no ICU collations")
        conn.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        drop_postgres_database(name)


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-icu", marks=pytest.mark.postgres),
    ],
)
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("parity")
    urls = icu_database() if request.param == "postgresql-icu" else database_for(request.param, tmp)
    url = next(urls)
    try:
        with run_server(open_settings(tmp, url)) as server:
            yield server
    finally:
        urls.close()


def post(c, events) -> None:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def code_point_order(sessions: list[dict], key: str, *, newest_first: bool) -> list[str]:
    """The ids as the list must give them: by ``key``, ties by id in code point order."""
    ordered = sorted(sessions, key=lambda s: (datetime.fromisoformat(s[key]), s["id"]), reverse=newest_first)
    return [s["id"] for s in ordered]


def test_sessions_tied_on_activity_are_listed_by_id_in_code_point_order(srv):
    prefix = "tie/"
    with srv.client() as c:
        post(c, [ev(prefix + sid, 1, "session.started", agent="tie-agent") for sid in IDS])  # one receive time
        listed = c.get("/sessions", params={"agent": "tie-agent"}).json()["sessions"]
    assert len(listed) == len(IDS)
    assert len({s["last_seen_at"] for s in listed}) < len(IDS)  # ties to break, or the test shows nothing
    assert [s["id"] for s in listed] == code_point_order(listed, "last_seen_at", newest_first=True)


def test_children_started_together_are_listed_by_id_in_code_point_order(srv):
    with srv.client() as c:
        post(c, [ev("kin-root", 1, "session.started")])
        post(c, [ev(sid, 1, "session.started", parent="kin-root", at=5) for sid in IDS])  # one start time
        children = c.get("/sessions/kin-root").json()["children"]
    assert sorted(s["id"] for s in children) == sorted(IDS)
    assert [s["id"] for s in children] == code_point_order(children, "started_at", newest_first=False)


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/sessions", {"agnet": "alpha"}),
        ("GET", "/stream", {"sesion_id": "unknown-root"}),
        ("DELETE", "/sessions/unknown-root", {"recusive": "true"}),
    ],
)
def test_a_misspelt_query_parameter_is_refused_not_ignored(srv, method, path, params):
    # ignored, ?agnet= listed every session, ?sesion_id= streamed every session's events and
    # ?recusive=true deleted the root alone, each answering as if asked for that
    with srv.client() as c:
        post(
            c,
            [ev("unknown-root", 1, "session.started"), ev("unknown-kid", 1, "session.started", parent="unknown-root")],
        )
        with c.stream(method, path, params=params) as r:  # an accepted /stream would never end
            assert r.status_code == 400, r.status_code
            r.read()
        message = r.json()["error"]["message"]
        name = next(iter(params))
        assert message.startswith(f"{name}: unknown query parameter"), message
        assert c.get("/sessions/unknown-root").status_code == 200  # nothing was deleted
