"""``NOT`` on a field an event does not have: one semantics for every target.

A comparison on a missing field is false, whatever its operator (so ``host != "x"`` does not
match an event without a host), and ``NOT`` turns false into true (so ``NOT host = "x"`` does).
The local store is the reference; each dialect writes the missing case out (KQL ``isempty``,
ES|QL ``IS NULL``, SPL ``isnull``), pushing ``NOT`` down to the comparisons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine

from agentwatch.events.model import Event
from agentwatch.federated.dialect import Window
from agentwatch.federated.fanout import translate
from agentwatch.federated.language import parse
from agentwatch.federated.settings import TargetSettings
from agentwatch.store import events as event_store
from tests.federated.fakes import Fake
from tests.federated.support import T0, federated_server
from tests.soc.helpers import AuthServer
from tests.support.server import RunningServer

W = Window(1767225600.0, 1767229200.5)
ENGINE = create_engine("sqlite://")
SPLUNK = TargetSettings(name="s", kind="splunk", url="http://127.0.0.1:9", allow_private=True, max_rows=10)
SENTINEL = TargetSettings(name="k", kind="sentinel", workspace="ws-1", table="T", max_rows=10)
ELASTIC = TargetSettings(name="e", kind="elastic", url="http://127.0.0.1:9", allow_private=True, index="i", max_rows=10)
LOCAL = TargetSettings(name="l", kind="agentwatch_local", max_rows=10)


def where(target: TargetSettings, query: str) -> str:
    """The filter of the translation, between the time filter and the row cap."""
    text = translate(target, parse(query), W, ENGINE)
    if target.kind == "splunk":
        return text.split(" | where ", 1)[1].rsplit(" | head ", 1)[0]
    if target.kind == "sentinel":
        return text.split(" | where ", 2)[2].rsplit(" | take ", 1)[0]
    return text.split(" | WHERE ", 2)[2].rsplit(" | LIMIT ", 1)[0]


def test_not_equal_on_a_field_matches_events_without_it_in_every_dialect() -> None:
    q = 'NOT host = "x"'
    assert where(SPLUNK, q) == "isnull('host') OR NOT ('host'==\"x\")"
    assert where(SENTINEL, q) == "isempty(['host']) or not(['host'] == \"x\")"
    assert where(ELASTIC, q) == '`host.name` IS NULL OR NOT (`host.name` == "x")'
    assert "events.host IS NULL OR events.host != 'x'" in translate(LOCAL, parse(q), W, ENGINE)


def test_not_is_pushed_down_to_each_comparison() -> None:
    q = 'NOT (host contains "a" OR pid in (1, 2)) AND agent = "c"'
    assert where(SPLUNK, q) == (
        "((isnull('host') OR NOT (match('host', \"(?i)a\"))) AND (isnull('pid') OR NOT (in('pid', 1, 2))))"
        " AND ('agent'==\"c\")"
    )
    assert where(SENTINEL, q) == (
        "((isempty(['host']) or not(['host'] contains \"a\"))"
        " and (isempty(['pid']) or not(['pid'] in (long(1), long(2)))))"
        " and (['agent'] == \"c\")"
    )
    assert where(ELASTIC, q) == (
        '((`host.name` IS NULL OR NOT (LOCATE(TO_LOWER(`host.name`), "a") > 0))'
        " AND (`process.pid` IS NULL OR NOT (`process.pid` IN (1, 2))))"
        ' AND (`agent.name` == "c")'
    )
    local = translate(LOCAL, parse(q), W, ENGINE)
    assert "(events.host IS NULL OR (aw_lower(events.host) NOT LIKE '%' || 'a' || '%' ESCAPE '/'))" in local
    assert "(events.pid IS NULL OR (events.pid NOT IN (1, 2)))" in local


def test_double_not_is_the_comparison_itself() -> None:
    assert where(SPLUNK, 'NOT NOT host = "x"') == "'host'==\"x\""
    assert where(ELASTIC, 'NOT NOT host = "x"') == '`host.name` == "x"'


def test_kql_not_equal_does_not_match_a_missing_text_field() -> None:
    """KQL has no null string: a missing text field reads as "", which != and an empty value
    would otherwise match."""
    assert where(SENTINEL, 'host != "x"') == "isnotempty(['host']) and ['host'] != \"x\""
    assert where(SENTINEL, 'host in ("", "a")') == "isnotempty(['host']) and ['host'] in (\"\", \"a\")"
    assert where(SENTINEL, 'host = "x"') == "['host'] == \"x\""
    assert where(SENTINEL, "pid != 3") == "['pid'] != long(3)"  # a missing number is null there


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    pair: tuple[AuthServer, Fake]
    with federated_server(module_database_url, tmp_path_factory.mktemp("data")) as pair:
        s = pair[0].server
        ts = T0 + 7200  # after the shared events' time range
        with_host = Event(
            body={"host": {"hostname": "h1"}, "process": {"pid": 7}},
            event_id="m-1",
            event_type="x",
            ts=ts,
            received_at=ts,
        )
        without = Event(body={}, event_id="m-2", event_type="x", ts=ts + 1, received_at=ts + 1)
        event_store.commit_batch(s.aw.engine, [with_host, without])
        yield s


def ids(s: RunningServer, query: str) -> list[str]:
    body: dict[str, Any] = {
        "query": query,
        "targets": ["local"],
        "time_range": {"from": "2026-01-01T02:00:00Z", "to": "2026-01-01T03:00:00Z"},
    }
    with s.client() as c:
        r = c.post("/api/v1/federated/query", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["targets"][0]["status"] == "ok", r.text
    return sorted(row["row"]["event_id"] for row in r.json()["rows"])


def test_local_store_not_matches_events_without_the_field(srv: RunningServer) -> None:
    assert ids(srv, 'NOT host = "h1"') == ["m-2"]
    assert ids(srv, 'NOT host = "other"') == ["m-1", "m-2"]
    assert ids(srv, 'host != "other"') == ["m-1"]  # a comparison on a missing field is false
    assert ids(srv, 'NOT host contains "zz"') == ["m-1", "m-2"]
    assert ids(srv, "NOT pid in (7)") == ["m-2"]
    assert ids(srv, 'NOT (host = "h1" AND pid = 7)') == ["m-2"]
    assert ids(srv, 'NOT (host = "nope" OR pid = 8)') == ["m-1", "m-2"]
    assert ids(srv, 'NOT NOT host = "h1"') == ["m-1"]
    assert ids(srv, 'NOT NOT host != "other"') == ["m-1"]
