"""The matcher's in-memory index follows single changes without being rebuilt whole: an
addition, a deletion or an expiry on this node costs no read of the whole indicator table, so
the work per change does not grow with the number of indicators; and the index stays right
(what it matches, on this node and on another node sharing the store). SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from agentwatch.config import Settings
from agentwatch.intel import store
from agentwatch.intel.matcher import IocMatcher, matcher_of
from agentwatch.store.engine import make_engine
from tests.support.server import RunningServer, run_server

IOCS = "/api/v1/intel/iocs"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(cfg) as s:
        yield s


class TableReads:
    """Counts the statements that read every live indicator (what a whole rebuild does)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.count = 0

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = " ".join(statement.lower().split())
        if "from intel_iocs" in text and "expires_at is null or" in text:
            self.count += 1

    def __enter__(self) -> TableReads:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def add(c: Any, *items: dict[str, Any]) -> dict[str, Any]:
    r = c.post(IOCS, json={"iocs": list(items)})
    assert r.status_code == 200, r.text
    return r.json()


def meets(c: Any, value: str) -> list[str]:
    r = c.post("/api/v1/intel/enrich", json={"indicator": value})
    assert r.status_code == 200, r.text
    return sorted(m["value"] for m in r.json()["matches"])


def test_single_changes_do_not_rebuild_the_index(srv: RunningServer) -> None:
    tag = uuid.uuid4().hex[:8]
    matcher = matcher_of(srv.aw)
    with srv.client() as c:
        add(c, *({"value": f"bulk{i}-{tag}.example"} for i in range(1500)))
        meets(c, f"bulk0-{tag}.example")  # the index is built
        size = len(matcher.index())
        rebuilt = matcher.rebuilds
        with TableReads(srv.aw.engine) as reads:
            for i in range(20):
                add(c, {"value": f"one{i}-{tag}.example"})
            # 3 to 4 s from now (whole seconds), taken after the slow part, as the checks below need
            soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
            add(c, {"value": f"brief-{tag}.example", "expires_at": soon})
            add(c, {"value": f"203.0.{113 + 0}.0/24", "source": tag})
            add(c, {"value": f"bulk1-{tag}.example", "severity": 2})  # an update
            ids = {i["value"]: i["id"] for i in c.get(IOCS, params={"q": f"one1-{tag}", "limit": 10}).json()["iocs"]}
            assert c.delete(f"{IOCS}/{ids[f'one1-{tag}.example']}").status_code == 204
            assert meets(c, f"www.one0-{tag}.example") == [f"one0-{tag}.example"]
            assert meets(c, f"one1-{tag}.example") == []
            assert meets(c, "203.0.113.9") == ["203.0.113.0/24"]
            assert meets(c, f"brief-{tag}.example") == [f"brief-{tag}.example"]
            hit = c.post("/api/v1/intel/enrich", json={"indicator": f"bulk1-{tag}.example"}).json()["matches"]
            assert [m["severity"] for m in hit] == [2]
            assert len(matcher.index()) == size + 20 + 1 + 1 - 1
            assert reads.count == 0, "a single change read the whole indicator table"
            time.sleep(4.2)
            assert meets(c, f"brief-{tag}.example") == []
            assert len(matcher.index()) == size + 20 + 1 - 1  # the expired one left the index
        assert reads.count == 0, "a single change read the whole indicator table"
        assert matcher.rebuilds == rebuilt


def test_another_nodes_change_is_seen_and_this_nodes_changes_stay_right(
    srv: RunningServer, module_database_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    engine = srv.aw.engine
    elsewhere = make_engine(module_database_url)  # a second node: its own connections
    other = IocMatcher(elsewhere, srv.aw.settings.intel)
    try:
        _two_nodes(srv, engine, elsewhere, other, tag)
    finally:
        elsewhere.dispose()


def _two_nodes(srv: RunningServer, engine: Any, elsewhere: Any, other: IocMatcher, tag: str) -> None:
    with srv.client() as c:
        add(c, {"value": f"first-{tag}.example"})
        assert [i.value for i in other.lookup("domain", f"first-{tag}.example")] == [f"first-{tag}.example"]
        # the other node writes straight to the store; this node's next change must not hide it
        assert store.add(elsewhere, [store.Indicator("domain", f"elsewhere-{tag}.example")], 100_000) is not None
        add(c, {"value": f"second-{tag}.example"})
        assert meets(c, f"elsewhere-{tag}.example") == [f"elsewhere-{tag}.example"]
        assert meets(c, f"second-{tag}.example") == [f"second-{tag}.example"]
        ioc = c.get(IOCS, params={"q": f"first-{tag}"}).json()["iocs"][0]
        assert c.delete(f"{IOCS}/{ioc['id']}").status_code == 204
        assert meets(c, f"first-{tag}.example") == []
        other.sync()  # it reads the change log now, without waiting for intel.sync_s
        assert other.rebuilds == 1, "the other node rebuilt instead of applying the logged changes"
        assert other.lookup("domain", f"first-{tag}.example") == []
        assert [i.value for i in other.lookup("domain", f"second-{tag}.example")] == [f"second-{tag}.example"]
        mine = {(i.kind, i.value, i.id) for i in store.active(engine, time.time())}
        assert {(k, v, i.id) for (k, v), i in matcher_of(srv.aw).index().exact.items()} == {
            m for m in mine if m[0] != "cidr"
        }
