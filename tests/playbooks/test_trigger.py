"""Automatic playbooks: a new alert matching a playbook's trigger runs it once, a non-matching
one does not, a repeat of the alert does not run it again, and a playbook's own doings never
start a playbook; the queue is bounded and counts what it drops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.app import Agentwatch
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.playbooks import runner, store
from agentwatch.soc.playbooks.model import parse_playbook
from agentwatch.soc.playbooks.settings import PlaybookSettings
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import PLAYBOOKS, create, server, settings, unique
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with server(tmp_path_factory.mktemp("data"), module_database_url) as s:
        yield s


def dns(c: Any, host: str, name: str) -> None:
    event = {"event_type": "network.dns", "host": {"hostname": host}, "data": {"query_name": name, "query_type": "A"}}
    r = c.post("/api/v1/ingest", json=[event])
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def ioc_alert(c: Any, host: str, value: str) -> dict[str, Any] | None:
    found = c.get("/api/v1/alerts", params={"type": "ioc", "entity": host}).json()["alerts"]
    return next((a for a in found if a["details"]["indicator"]["value"] == value), None)


def test_a_matching_new_alert_runs_the_playbook_once_and_others_do_not(srv: RunningServer) -> None:
    tag = unique()
    host = f"trig-{tag}"
    hot, mild, other = f"hot-{tag}.example", f"mild-{tag}.example", f"other-{tag}.example"
    with srv.client() as c:
        trigger = {"type": "alert", "min_severity": 8, "alert_types": ["ioc"], "tags": [f"pb-{tag}"]}
        steps = [
            {"action": "set_alert_status", "params": {"status": "acknowledged"}},
            {"action": "assign_alert", "params": {"assignee": "auto-responder"}},
        ]
        pb = create(c, steps, trigger=trigger)
        manual = create(c, [{"action": "set_alert_status", "params": {"status": "closed"}}])  # never automatic
        r = c.post(
            "/api/v1/intel/iocs",
            json={
                "iocs": [
                    {"value": hot, "severity": 9, "tags": [f"pb-{tag}"]},
                    {"value": mild, "severity": 5, "tags": [f"pb-{tag}"]},  # below min_severity
                    {"value": other, "severity": 9, "tags": ["unrelated"]},  # no matching tag
                ]
            },
        )
        assert r.status_code == 200 and r.json()["created"] == 3, r.text
        for name in (hot, mild, other):
            dns(c, host, name)
        finished = lambda: [r for r in c.get(f"{PLAYBOOKS}/{pb['id']}/runs").json()["runs"] if r["finished_at"]]  # noqa: E731
        runs = wait_for(finished)
        hot_alert = wait_for(lambda: ioc_alert(c, host, hot))
        assert len(runs) == 1
        (run,) = runs
        assert (run["alert_id"], run["trigger"], run["started_by"], run["status"]) == (
            hot_alert["id"],
            "automatic",
            "trigger:alert",
            "succeeded",
        )
        done = wait_for(lambda: (a := ioc_alert(c, host, hot)) and a["assignee"] and a)
        assert (done["status"], done["assignee"]) == ("acknowledged", "auto-responder")
        for value in (mild, other):
            untouched = wait_for(lambda v=value: ioc_alert(c, host, v))
            assert (untouched["status"], untouched["assignee"]) == ("open", None)
        dns(c, host, f"www.{hot}")  # a repeat: the same alert counts it, it is not new
        wait_for(lambda: ioc_alert(c, host, hot)["count"] == 2)
        time.sleep(1.0)  # what would have been queued has run by now
        assert c.get(f"{PLAYBOOKS}/{pb['id']}/runs").json()["meta"]["total"] == 1
        assert c.get(f"{PLAYBOOKS}/{manual['id']}/runs").json()["meta"]["total"] == 0
        assert c.get("/api/v1/health").json()["components"]["playbooks"]["dropped"] == 0


def test_a_disabled_or_deleted_playbook_stops_running_automatically(srv: RunningServer) -> None:
    tag = unique()
    host = f"off-{tag}"
    with srv.client() as c:
        trigger = {"type": "alert", "tags": [f"off-{tag}"]}
        steps = [{"action": "assign_alert", "params": {"assignee": "bot"}}]
        pb = create(c, steps, trigger=trigger, enabled=False)
        c.post("/api/v1/intel/iocs", json={"iocs": [{"value": f"a-{tag}.example", "tags": [f"off-{tag}"]}]})
        dns(c, host, f"a-{tag}.example")
        wait_for(lambda: ioc_alert(c, host, f"a-{tag}.example"))
        time.sleep(1.0)
        assert c.get(f"{PLAYBOOKS}/{pb['id']}/runs").json()["meta"]["total"] == 0
        assert ioc_alert(c, host, f"a-{tag}.example")["assignee"] is None


@pytest.fixture(scope="module")
def bare(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agentwatch]:
    """A real agentwatch, built but not started: its alert recorder feeds the real trigger, whose
    worker does not run, so what the trigger queued stays in its queue to be counted."""
    cfg = settings(tmp_path_factory.mktemp("bare"), module_database_url).model_copy(
        update={"playbooks": PlaybookSettings(queue_size=2)}
    )
    aw = Agentwatch(cfg)
    yield aw
    aw.engine.dispose()


def finding(tag: str, n: int) -> Finding:
    event = Event(body={}, event_id=f"{tag}-{n}", event_type="ai.request", ts=1000.0 + n, received_at=1000.0)
    return Finding("atr", f"bare-{tag}", "Bare", 9, [event], alert_type="atr", dedup_key=f"{tag}-{n}")


async def _record(aw: Agentwatch, tag: str, count: int, *, in_run: bool) -> tuple[int, int]:
    """(runs queued, runs dropped) once ``count`` new alerts of severity 9 were recorded."""
    trig = aw.components["playbooks"]
    trig.queue = asyncio.Queue(aw.settings.playbooks.queue_size)
    trig.dropped = 0
    await trig.reload()
    token = runner.IN_RUN.set("some-playbook") if in_run else None
    try:
        await aw.alerts.record([finding(tag, n) for n in range(count)])
    finally:
        if token is not None:
            runner.IN_RUN.reset(token)
    return trig.queue.qsize(), trig.dropped


def test_alerts_recorded_during_a_playbook_run_start_nothing_and_the_queue_is_bounded(bare: Agentwatch) -> None:
    doc = parse_playbook(
        {
            "name": "bare",
            "trigger": {"type": "alert", "min_severity": 5},
            "steps": [{"action": "assign_alert", "params": {"assignee": "x"}}],
        },
        bare.settings.playbooks,
    )
    store.create(bare.engine, doc, "test", 10)
    assert asyncio.run(_record(bare, unique(), 1, in_run=True)) == (0, 0)
    assert asyncio.run(_record(bare, unique(), 1, in_run=False)) == (1, 0)
    assert asyncio.run(_record(bare, unique(), 5, in_run=False)) == (2, 3)  # room for 2 of 5
