"""Defects found by attacking the federated query: the ES|QL time filter's format, early years,
ES|QL's 10,000-row ceiling, a credential echoed back by a SIEM, case-insensitive matching of
non-ASCII letters on SQLite, and a local query left running after its target timed out."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.events.model import Event
from agentwatch.federated import local
from agentwatch.federated.dialect import Window
from agentwatch.federated.fanout import run_one, translate
from agentwatch.federated.language import parse
from agentwatch.federated.settings import TargetSettings
from agentwatch.federated.spec import shown_window
from agentwatch.store import events as event_store
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
from tests.support.server import free_port, serve_asgi
from tests.support.services import database_for

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
ENGINE = create_engine("sqlite://")
ELASTIC = TargetSettings(name="e", kind="elastic", url="http://127.0.0.1:9", allow_private=True, index="logs")
SENTINEL = TargetSettings(name="k", kind="sentinel", workspace="ws-1", table="T")


def test_esql_time_filter_is_written_in_the_millisecond_format_to_datetime_reads() -> None:
    # TO_DATETIME converts only yyyy-MM-dd'T'HH:mm:ss.SSS'Z'; anything else is null, and a
    # filter against null keeps no row at all. The window only ever widens to whole milliseconds.
    text_ = translate(ELASTIC, parse('host = "a"'), Window(T0 + 0.0004, T0 + 3600.0004), ENGINE)
    assert '`@timestamp` >= TO_DATETIME("2026-01-01T00:00:00.000Z")' in text_
    assert '`@timestamp` <= TO_DATETIME("2026-01-01T01:00:00.001Z")' in text_


def test_a_window_before_the_year_1000_keeps_four_digit_years() -> None:
    w = Window(-46_000_000_000.0, -46_000_000_000.0 + 60)  # in the year 512
    assert shown_window(w)["from"].startswith("0512-")
    assert "datetime(0512-" in translate(SENTINEL, parse('host = "a"'), w, ENGINE)
    assert 'TO_DATETIME("0512-' in translate(ELASTIC, parse('host = "a"'), w, ENGINE)


def test_an_elastic_target_cannot_ask_past_esqls_ten_thousand_row_ceiling() -> None:
    # ES|QL never answers more than 10,000 rows whatever LIMIT says: max_rows 10,000 asks
    # 10,001 and a cut-off answer would look complete.
    es = {"name": "e", "kind": "elastic", "url": "http://127.0.0.1:9", "allow_private": True, "index": "x"}
    with pytest.raises(ValidationError, match="max_rows must be at most 9999"):
        TargetSettings(**es, max_rows=10_000)
    assert TargetSettings(**es, max_rows=9_999).max_rows == 9_999


# --- a SIEM that echoes the credential it was sent ----------------------------------------------

SECRET = "echoed-secret-0d9f2b7a61c4"
ENV_NAME = "AW_TEST_FED_HUNT_SECRET"


def _echo_app() -> Starlette:
    pad = "x" * 190  # the echo straddles the reason's 200-character cut

    async def splunk(request: Request) -> Response:
        said = f"{pad} bad header {request.headers.get('authorization')}"
        if "fatal" in (await request.body()).decode():
            line = orjson.dumps({"preview": False, "messages": [{"type": "FATAL", "text": said}]})
            return Response(line + b"\n", media_type="application/json")
        return Response(orjson.dumps({"messages": [{"type": "WARN", "text": said}]}), 401)

    async def sentinel(request: Request) -> Response:
        doc = {"error": {"code": "x", "message": f"token {request.headers.get('authorization')} is invalid"}}
        return Response(orjson.dumps(doc), 403)

    async def elastic(request: Request) -> Response:
        doc = {"error": {"type": "security_exception", "reason": f"{pad}{request.headers.get('authorization')}"}}
        return Response(orjson.dumps(doc), 401)

    return Starlette(
        routes=[
            Route("/services/search/jobs/export", splunk, methods=["POST"]),
            Route("/v1/workspaces/{workspace}/query", sentinel, methods=["POST"]),
            Route("/_query", elastic, methods=["POST"]),
        ]
    )


@pytest.fixture
def echo_url() -> Iterator[str]:
    port = free_port()
    os.environ[ENV_NAME] = SECRET
    try:
        with serve_asgi(_echo_app(), "127.0.0.1", port):
            yield f"http://127.0.0.1:{port}"
    finally:
        os.environ.pop(ENV_NAME, None)


def test_a_credential_echoed_back_by_the_target_never_shows_in_its_reason(echo_url: str) -> None:
    common = {"url": echo_url, "allow_private": True, "credential_env": ENV_NAME, "timeout_s": 5}
    targets = [
        TargetSettings(name="s", kind="splunk", **common),
        TargetSettings(name="k", kind="sentinel", workspace="ws", table="T", **common),
        TargetSettings(name="e", kind="elastic", index="x", **common),
    ]
    for target, query in [(t, 'host = "a"') for t in targets] + [(targets[0], 'host = "fatal"')]:
        status, _ = asyncio.run(run_one(target, parse(query), Window(T0, T0 + 60), ENGINE))
        assert status["status"] == "error", status
        for part in (SECRET, SECRET[:8], SECRET[-8:]):
            assert part not in status["reason"], status


# --- the local store ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(module_database_url: str) -> Iterator[Engine]:
    eng = make_engine(module_database_url)
    migrate(eng)
    yield eng
    eng.dispose()


def _event(n: int, host: str) -> Event:
    return Event(
        body={"host": {"hostname": host}},
        event_id=f"hunt-{n}",
        event_type="process.exec",
        ts=T0 + n,
        received_at=T0 + n,
        severity=1,
        agent="coder",
    )


def test_contains_and_startswith_ignore_the_case_of_non_ascii_letters_on_both_stores(engine: Engine) -> None:
    event_store.commit_batch(engine, [_event(1, "ÉCOLE-Ünïcode"), _event(2, "plain")])
    w = Window(T0, T0 + 60)
    for query in ('host contains "école"', 'host startswith "éCOLE-ü"', 'host contains "ÜNÏ"'):
        rows = local.run(engine, parse(query), w, 10)
        assert [r["host"] for r in rows] == ["ÉCOLE-Ünïcode"], query
    assert local.run(engine, parse('host contains "ECOLE"'), w, 10) == []


def _store_of(kind: str, directory: Any) -> Iterator[Engine]:
    """A migrated store of one kind (the two tests below are about one store each)."""
    for url in database_for(kind, directory):
        eng = make_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Any) -> Iterator[Engine]:
    yield from _store_of("sqlite", tmp_path)


@pytest.fixture
def postgresql_engine(tmp_path: Any) -> Iterator[Engine]:
    yield from _store_of("postgresql", tmp_path)


def test_a_local_query_past_its_deadline_is_stopped_inside_sqlite(sqlite_engine: Engine) -> None:
    # PostgreSQL's statement_timeout is tested with a statement that waits, below
    engine = sqlite_engine
    event_store.commit_batch(engine, [_event(i, f"h-{i}") for i in range(100, 300)])
    with pytest.raises(TimeoutError):  # the progress handler's first look stops the statement
        local.run(engine, parse('host contains "zz"'), Window(T0, T0 + 600), 10, deadline=time.monotonic() - 1)
    # the connection goes back to the pool usable, without the deadline
    assert len(local.run(engine, parse('host startswith "h-"'), Window(T0, T0 + 600), 500)) == 200


@pytest.mark.postgres
def test_a_timed_out_local_target_leaves_no_query_running_in_postgresql(postgresql_engine: Engine) -> None:
    # a SQLite read never waits for a lock (WAL); its deadline is tested above
    engine = postgresql_engine
    target = TargetSettings(name="local", kind="agentwatch_local", timeout_s=0.3)
    locker = engine.connect()
    tx = locker.begin()
    locker.exec_driver_sql("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    loop = asyncio.new_event_loop()  # closed without waiting for its worker threads (asyncio.run would)
    try:
        status, rows = loop.run_until_complete(run_one(target, parse('host = "a"'), Window(T0, T0 + 60), engine))
        assert status["status"] == "timeout" and rows == []
        deadline = time.monotonic() + 10  # a loaded machine may take seconds to cancel
        waiting: list[Any] = []
        with engine.connect() as watch:
            while time.monotonic() < deadline:
                waiting = watch.execute(
                    text(
                        "SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'"
                        # still waiting for the table: a statement already cancelled shows 'active'
                        # in ClientRead until its client has read the error (seconds when loaded)
                        " AND wait_event_type = 'Lock' AND query LIKE 'SELECT events.ts%'"
                    )
                ).all()
                if not waiting:
                    break
                time.sleep(0.05)
        assert not waiting, f"the timed-out query still waits in the database: {waiting}"
    finally:
        tx.rollback()
        locker.close()
        loop.close()


def test_numbers_beyond_the_columns_own_range_compare_on_both_stores(engine: Engine) -> None:
    # severity is a 32-bit column: PostgreSQL refused a bound value past its range (DataError),
    # so the local target failed on PostgreSQL where SQLite answered.
    event_store.commit_batch(engine, [_event(400, "range-host")])
    w = Window(T0 + 399, T0 + 401)
    assert local.run(engine, parse("severity > 3000000000"), w, 10) == []
    assert [r["host"] for r in local.run(engine, parse("severity < 9007199254740992"), w, 10)] == ["range-host"]
    assert [r["host"] for r in local.run(engine, parse("severity in (1, -9007199254740992)"), w, 10)] == ["range-host"]
    assert local.run(engine, parse("NOT severity != -3000000000"), w, 10) == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9200?api_key=abc", "http://127.0.0.1:9200/#x", "http://127.0.0.1:9200?"]
)
def test_a_target_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    # the request path is appended to the URL: "…?api_key=abc" + "/_query" would send the path
    # inside the query string, and GET /targets would show whatever secret the query holds
    with pytest.raises(ValidationError, match="query or fragment"):
        TargetSettings(name="e", kind="elastic", url=url, allow_private=True, index="x")
