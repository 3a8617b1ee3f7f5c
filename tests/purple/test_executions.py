"""Atomic tests run through the real pipeline and the real detection engine: every catalogue
test passes (the proof that the catalogue is honest), a test whose rule is disabled fails, a
running execution is cancelled and a finished one deleted; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.purple.catalog import catalog
from tests.purple.helpers import BASE, purple_settings, run, set_rule, start
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(purple_settings(tmp_path_factory.mktemp("data"), module_database_url)) as s:
        yield s


def test_the_catalogue_lists_eleven_tests_and_filters_by_technique_and_tactic(srv: RunningServer) -> None:
    with srv.client() as c:
        every = c.get(f"{BASE}/atomic-tests").json()
        assert every["total"] == 11
        assert [t["id"] for t in every["tests"]] == [f"AW-AT-{n:03d}" for n in range(1, 12)]
        first = every["tests"][0]
        assert first["techniques"] == ["T1059.004", "T1105"]
        assert first["expected"] == [{"rule_id": "AW-TOOL-001", "alert_type": "atr"}]
        assert first["source"] == "agentwatch" and first["events"] == 1
        # T1552 and its sub-techniques: credential read (003), key exfiltrated (004), key posted (005),
        # key in a prompt (010)
        t1552 = c.get(f"{BASE}/atomic-tests", params={"technique": "t1552"}).json()
        assert [t["id"] for t in t1552["tests"]] == ["AW-AT-003", "AW-AT-004", "AW-AT-005", "AW-AT-010"]
        impact = c.get(f"{BASE}/atomic-tests", params={"tactic": "impact"}).json()
        assert [t["id"] for t in impact["tests"]] == ["AW-AT-006"]


@pytest.mark.parametrize("test_id", sorted(catalog()))
def test_every_catalogue_test_passes_against_the_real_engine(srv: RunningServer, test_id: str) -> None:
    with srv.client() as c:
        done = run(c, test_id)
        assert done["status"] == "passed", done
        assert done["error"] is None and done["finished_at"] is not None
        expected = [(e.rule_id, e.alert_type) for e in catalog()[test_id].expected]
        assert [(r["rule_id"], r["alert_type"]) for r in done["results"]] == expected
        for result in done["results"]:
            assert result["fired"] and result["alert_ids"]
            alert = c.get(f"/api/v1/alerts/{result['alert_ids'][0]}").json()
            # the alert is the run's, and names the simulator agent
            assert alert["rule_id"] == result["rule_id"] and alert["session_id"] == f"purple-{done['id']}"
            assert "purple-team-simulator" in {e["value"] for e in alert["entities"]}
        # the run's events, found as simulated ones: source "purple", the run's own host
        events = c.get("/api/v1/events", params={"source": "purple", "entity": done["host"]}).json()["events"]
        assert sorted(e["id"] for e in events) == sorted(done["event_ids"])
        assert len(events) == len(catalog()[test_id].events)
        assert {(e["source"], e["agent"], e["session_id"]) for e in events} == {
            ("purple", "purple-team-simulator", f"purple-{done['id']}")
        }


def test_a_second_run_raises_its_own_alerts(srv: RunningServer) -> None:
    with srv.client() as c:
        one, two = run(c, "AW-AT-004"), run(c, "AW-AT-004")
        assert one["status"] == two["status"] == "passed"
        # the never-seen destination is new again for the second run's own host
        ids_one = {a for r in one["results"] for a in r["alert_ids"]}
        ids_two = {a for r in two["results"] for a in r["alert_ids"]}
        assert len(ids_two) == 2 and not ids_one & ids_two


def test_a_test_whose_rule_is_disabled_fails_and_says_which_rule_did_not_fire(srv: RunningServer) -> None:
    with srv.client() as c:
        set_rule(c, "AW-TOOL-002", False)
        try:
            done = run(c, "AW-AT-004", timeout_s=1.5)
        finally:
            set_rule(c, "AW-TOOL-002", True)
        assert done["status"] == "failed"
        assert "timeout" in done["error"]
        fired = {r["rule_id"]: r["fired"] for r in done["results"]}
        assert fired == {"AW-TOOL-002": False, "AW-BUILTIN-EXFIL": True}
        listed = c.get(f"{BASE}/executions", params={"test_id": "AW-AT-004", "status": "failed"}).json()
        assert done["id"] in [e["id"] for e in listed["executions"]]


def test_a_running_execution_is_cancelled_then_deleted(srv: RunningServer) -> None:
    with srv.client() as c:
        set_rule(c, "AW-TOOL-003", False)
        try:
            running = start(c, "AW-AT-006", timeout_s=120)
            r = c.delete(f"{BASE}/executions/{running['id']}")
        finally:
            set_rule(c, "AW-TOOL-003", True)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        assert c.get(f"{BASE}/executions/{running['id']}").json()["status"] == "cancelled"
        assert c.delete(f"{BASE}/executions/{running['id']}").status_code == 204
        assert c.get(f"{BASE}/executions/{running['id']}").status_code == 404
        assert c.delete(f"{BASE}/executions/{running['id']}").status_code == 404
