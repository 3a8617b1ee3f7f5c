"""The hunt schedule and the hunts folder on a real server, on SQLite and PostgreSQL: bad files
reported and never fatal, scheduled runs at their interval, the run lease between nodes, and
the permissions of each route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwatch.events.model import parse_ts
from agentwatch.hunts import store
from agentwatch.hunts.schedule import Busy, HuntSchedule
from tests.detect.helpers import wait_for
from tests.hunts.helpers import HUNTS, definition, hunt_settings, loaded, run, unique, write
from tests.soc.helpers import auth_server
from tests.support.server import RunningServer, run_server

BAD = {
    "a-yaml.yml": "id: a\n  title: : x\n",
    "b-filter.yaml": "id: b\ntitle: B\nhypothesis: h\nquery:\n  template_id: ai.request\n  colour: red\n",
    "c-mitre.yml": "id: c\ntitle: C\nhypothesis: h\nmitre: [T1059, X1]\n",
    "d-huge.yml": "id: d\ntitle: D\nhypothesis: h\n" + "# padding\n" * 7_000,  # 70,031 bytes
    "z-twice.yml": "id: good\ntitle: Again\nhypothesis: h\n",
}
MITRE_RULE = "must be an ATT&CK technique (T1059, T1059.001) or tactic id (TA0002)"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Path:
    path = tmp_path_factory.mktemp("hunts")  # one per store (the module runs once on each)
    for name, text in BAD.items():
        write(path, name, text)
    write(path, "good.yml", definition("good"))
    (path / "notes.txt").write_text("not a definition: ignored")
    return path


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory, folder: Path) -> Iterator[RunningServer]:
    with run_server(hunt_settings(tmp_path_factory.mktemp("data"), module_database_url, folder)) as s:
        yield s


def test_bad_files_are_listed_with_line_and_rule_and_the_good_one_loads(srv: RunningServer) -> None:
    with srv.client() as c:
        listed = c.get(HUNTS).json()
        assert [h["id"] for h in listed["hunts"]] == ["good"]
        assert listed["errors"] == [
            {"file": "a-yaml.yml", "line": 2, "error": "yaml: mapping values are not allowed here"},
            {"file": "b-filter.yaml", "line": 6, "error": "query.colour: Extra inputs are not permitted"},
            {"file": "c-mitre.yml", "line": 4, "error": f"mitre.1: {MITRE_RULE}"},
            {"file": "d-huge.yml", "line": None, "error": "file: larger than hunts.max_file_bytes (65536 bytes)"},
            {"file": "z-twice.yml", "line": None, "error": "id: 'good' is already defined in good.yml"},
        ]
        assert listed["meta"] == {"total": 1, "errors": 5}
        assert run(c, "good")["status"] == "ok"  # the server runs on


def test_a_fixed_file_loads_at_the_next_tick(srv: RunningServer, folder: Path) -> None:
    with srv.client() as c:
        write(folder, "c-mitre.yml", "id: c\ntitle: C\nhypothesis: h\nmitre: [T1059, TA0002]\n")
        assert loaded(c, "c")["mitre"] == ["T1059", "TA0002"]
        assert "c-mitre.yml" not in {e["file"] for e in c.get(HUNTS).json()["errors"]}


def test_a_scheduled_hunt_runs_at_its_interval_and_a_manual_one_never(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    every, manual = f"s-{tag}", f"m-{tag}"
    write(folder, f"{every}.yml", definition(every, schedule="1s"))
    write(folder, f"{manual}.yml", definition(manual))
    with srv.client() as c:
        loaded(c, every)

        def scheduled() -> list[dict[str, str]]:
            runs = c.get(f"{HUNTS}/{every}/results").json()["runs"]
            return runs if len(runs) >= 2 else []

        newest, older = wait_for(scheduled, timeout=15)[:2]
        assert newest["trigger"] == older["trigger"] == "schedule"
        # one interval (1 s) apart, less the schedule's slack for its own tick lag (1/20 of it)
        assert parse_ts(newest["started_at"]) - parse_ts(older["started_at"]) >= 0.95
        assert c.get(f"{HUNTS}/{manual}/results").json()["runs"] == []


def test_a_hunt_held_by_another_node_is_409_and_runs_once_released(srv: RunningServer) -> None:
    engine = srv.aw.engine
    assert store.take_lease(engine, "good", "other-node", 60)
    assert not store.take_lease(engine, "good", "third-node", 60)  # held, not expired
    with srv.client() as c:
        r = c.post(f"{HUNTS}/good/run")
        assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"
        store.release_lease(engine, "good", "other-node")
        assert run(c, "good")["status"] == "ok"
    assert store.take_lease(engine, "good", "other-node", -1)  # a lease already past its time
    assert store.take_lease(engine, "good", "third-node", 60)  # is taken over
    store.release_lease(engine, "good", "third-node")


def test_reading_needs_events_and_alerts_read_and_running_rules_write(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "hunts").mkdir()
    write(tmp_path / "hunts", "p.yml", definition("p"))
    with auth_server(database_url, tmp_path) as a:  # the default folder: <data_dir>/hunts
        c = a.client
        _, events_only = a.key("events:read")
        _, reader = a.key("events:read", "alerts:read")
        _, runner = a.key("rules:write")
        assert c.get(HUNTS).status_code == 401
        for path in (HUNTS, f"{HUNTS}/p", f"{HUNTS}/p/results"):
            assert c.get(path, headers=events_only).status_code == 403, path
            assert c.get(path, headers=runner).status_code == 403, path
            assert c.get(path, headers=reader).status_code == 200, path
        assert c.post(f"{HUNTS}/p/run", headers=reader).status_code == 403
        assert c.post(f"{HUNTS}/p/run", headers=runner).status_code == 200


def test_a_second_node_skips_a_scheduled_run_another_node_just_made(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    hunt_id = f"n-{tag}"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, schedule="1h"))
    with srv.client() as c:
        loaded(c, hunt_id)
        first = wait_for(lambda: c.get(f"{HUNTS}/{hunt_id}/results").json()["run"], timeout=10)
        assert first["trigger"] == "schedule"  # the first tick runs a hunt that never ran
    other = HuntSchedule(srv.aw)  # another node on the same store, with its own lease holder
    hunt = other.catalog.get(hunt_id) or (other.catalog.refresh() and other.catalog.get(hunt_id))
    assert hunt is not None

    def second_node_tries() -> tuple[str, object] | None:
        try:
            return ("answered", asyncio.run(other.run(hunt, "schedule")))
        except Busy:  # the first node lets go of its lease just after it stored its run
            return None

    # ran by the first node within the hour: skipped
    assert wait_for(second_node_tries, timeout=10) == ("answered", None)
    assert asyncio.run(other.run(hunt, "manual"))["trigger"] == "manual"  # asked for: it runs
    runs = store.history(srv.aw.engine, hunt_id, 10)
    assert [r["trigger"] for r in runs] == ["manual", "schedule"]
