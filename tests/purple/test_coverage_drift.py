"""Coverage by test verdict and coverage drift, counted by hand on a fresh store, on SQLite and
PostgreSQL. The tests of this module build on each other, in order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.purple.helpers import BASE, purple_settings, run, set_rule
from tests.support.server import RunningServer, run_server

# The catalogue's techniques: 001 T1059.004 T1105 | 002 T1059 | 003 T1552.001 | 004 T1552.004 T1041 |
# 005 T1552.001 T1567 | 006 T1485 | 007 T1195 | 008 T1195 | 009 T1213 | 010 T1552.004 | 011 T1567
TECHNIQUES = ["T1041", "T1059", "T1059.004", "T1105", "T1195", "T1213", "T1485", "T1552.001", "T1552.004", "T1567"]


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(purple_settings(tmp_path_factory.mktemp("data"), module_database_url)) as s:
        yield s


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in doc["techniques"]}


def test_before_any_run_every_technique_is_untested(srv: RunningServer) -> None:
    with srv.client() as c:
        doc = c.get(f"{BASE}/coverage").json()
        assert [t["id"] for t in doc["techniques"]] == TECHNIQUES
        assert doc["totals"]["untested"] == 10 and doc["totals"]["passed"] == 0
        t1195 = by_id(doc)["T1195"]
        assert [t["test_id"] for t in t1195["tests"]] == ["AW-AT-007", "AW-AT-008"]
        # AW-MCP-001 and AW-BUILTIN-TOOL-DRIFT are the enabled rules tagged attack.t1195
        assert t1195["rules"] == 2 and t1195["covered_by_rules"]
        assert c.get(f"{BASE}/drift/diff").status_code == 404  # no snapshot yet


def test_verdicts_show_per_technique(srv: RunningServer) -> None:
    with srv.client() as c:
        assert run(c, "AW-AT-001")["status"] == "passed"
        set_rule(c, "AW-TOOL-003", False)
        try:
            assert run(c, "AW-AT-006", timeout_s=1)["status"] == "failed"
        finally:
            set_rule(c, "AW-TOOL-003", True)
        assert run(c, "AW-AT-003")["status"] == "passed"
        doc = c.get(f"{BASE}/coverage").json()
        status = {tid: t["status"] for tid, t in by_id(doc).items()}
        assert status["T1059.004"] == status["T1105"] == "passed"
        assert status["T1485"] == "failed"
        assert status["T1552.001"] == "partial"  # 003 passed, 005 never ran
        assert status["T1059"] == "untested"  # a sub-technique's verdict is not its parent's
        assert doc["totals"] == {
            "techniques": 10,
            "passed": 2,
            "failed": 1,
            "partial": 1,
            "untested": 6,
            "techniques_covered_by_rules": doc["totals"]["techniques_covered_by_rules"],
        }
        impact = next(t for t in doc["tactics"] if t["shortname"] == "impact")
        assert (impact["techniques"], impact["passed"], impact["failed"]) == (["T1485"], 0, 1)
        # the test list shows the latest verdict too
        tests = {t["id"]: t for t in c.get(f"{BASE}/atomic-tests").json()["tests"]}
        assert tests["AW-AT-006"]["latest"]["status"] == "failed" and tests["AW-AT-002"]["latest"] is None


def test_drift_names_the_techniques_a_disabled_rule_took_away_and_gave_back(srv: RunningServer) -> None:
    with srv.client() as c:
        first = c.post(f"{BASE}/drift/snapshot", json={"label": "baseline"})
        assert first.status_code == 201, first.text
        first = first.json()
        assert "T1485" in first["techniques"] and first["tests"]["AW-AT-006"] == "failed"
        set_rule(c, "AW-TOOL-003", False)  # its tags: attack.t1485, attack.t1561; no other rule has them
        try:
            second = c.post(f"{BASE}/drift/snapshot").json()
        finally:
            set_rule(c, "AW-TOOL-003", True)
        assert second["rules"] == first["rules"] - 1
        assert second["techniques_covered"] == first["techniques_covered"] - 2
        diff = c.get(f"{BASE}/drift/diff").json()  # the two newest
        assert (diff["from"]["id"], diff["to"]["id"]) == (first["id"], second["id"])
        assert diff["added"] == [] and diff["dropped"] == ["T1485", "T1561"]
        assert diff["tests_changed"] == []
        assert run(c, "AW-AT-006")["status"] == "passed"
        third = c.post(f"{BASE}/drift/snapshot", json={"label": "after fix"}).json()
        back = c.get(f"{BASE}/drift/diff").json()
        assert back["added"] == ["T1485", "T1561"] and back["dropped"] == []
        assert back["tests_changed"] == [{"test_id": "AW-AT-006", "from": "failed", "to": "passed"}]
        same = c.get(f"{BASE}/drift/diff", params={"from": first["id"], "to": third["id"]}).json()
        assert (same["added"], same["dropped"], same["unchanged"]) == ([], [], first["techniques_covered"])
        listed = c.get(f"{BASE}/drift/snapshots").json()
        assert listed["total"] == 3
        assert [s["label"] for s in listed["snapshots"]] == ["after fix", "", "baseline"]


def test_bad_drift_and_coverage_requests_are_named(srv: RunningServer) -> None:
    with srv.client() as c:
        only_from = c.get(f"{BASE}/drift/diff", params={"from": "00000000-0000-0000-0000-000000000000"})
        assert only_from.status_code == 400 and "from" in only_from.json()["error"]["message"]
        bad = c.get(f"{BASE}/drift/diff", params={"from": "nope", "to": "nope"})
        assert bad.status_code == 400 and "from: must be a UUID" in bad.json()["error"]["message"]
        gone = "00000000-0000-0000-0000-000000000000"
        assert c.get(f"{BASE}/drift/diff", params={"from": gone, "to": gone}).status_code == 404
        label = c.post(f"{BASE}/drift/snapshot", json={"label": "a\x07b"})
        assert label.status_code == 400 and "label" in label.json()["error"]["message"]
        assert c.post(f"{BASE}/drift/snapshot", json={"label": "x" * 129}).status_code == 400
        assert c.get(f"{BASE}/coverage", params={"since": "x"}).status_code == 400
