"""Idle baselines (``maintenance.ueba_baseline_idle_days``): stored baselines not written since
the cutoff are deleted page by page, and forgotten by this node's detector, so the entity warms
up afresh; a baseline changed here and not yet written is spared. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from agentwatch.config import Settings
from agentwatch.events.entities import derive
from agentwatch.events.model import Event, parse_ts
from agentwatch.maintenance import builtin_chores
from agentwatch.ueba import idle
from agentwatch.ueba.detector import UebaDetector
from agentwatch.ueba.schema import ueba_baselines
from agentwatch.ueba.settings import UebaSettings
from tests.detect.helpers import wait_for
from tests.support.server import run_server
from tests.ueba.helpers import UEBA, at, host_id, ingest, ordinary_days, tool_event

DAY = 86_400.0


def events(docs: list[dict]) -> list[Event]:
    out = []
    for i, d in enumerate(docs):
        ts = parse_ts(d["ts"])
        e = Event(
            body=d, event_id=f"idle-{i}-{ts}-{d['host']['hostname']}", event_type=d["event_type"], ts=ts, received_at=ts
        )
        e.entities = derive(e)
        out.append(e)
    return out


def written_long_ago(engine: Engine, host: str, days: float = 40) -> None:
    with engine.begin() as conn:
        row = ueba_baselines.c.entity_id == host_id(host)
        conn.execute(update(ueba_baselines).where(row).values(updated_at=time.time() - days * DAY))


def stored(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(ueba_baselines.c.entity_id)).scalars())


def test_an_idle_baseline_is_deleted_and_forgotten_and_its_entity_warms_up_afresh(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events(ordinary_days("idle-host") + ordinary_days("busy-host")))
    det.persist()
    written_long_ago(engine, "idle-host")

    assert idle.purge_idle_baselines(engine, time.time() - 30 * DAY, detector=det) == 1

    assert stored(engine) == {host_id("busy-host")}
    assert det.get(host_id("idle-host")) is None  # gone from memory too
    det.detect(events([tool_event("idle-host", at(40, 10))]))
    back = det.get(host_id("idle-host"))
    assert back is not None and back.event_count == 1  # learns afresh
    busy = det.get(host_id("busy-host"))
    assert busy is not None and busy.event_count == 54


def test_a_baseline_changed_here_and_not_yet_written_is_spared(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events(ordinary_days("back-host")))
    det.persist()
    written_long_ago(engine, "back-host")
    det.detect(events([tool_event("back-host", at(40, 10))]))  # seen again: changed, not written

    assert idle.purge_idle_baselines(engine, time.time() - 30 * DAY, detector=det) == 0

    det.persist()
    assert stored(engine) == {host_id("back-host")}
    b = det.get(host_id("back-host"))
    assert b is not None and b.event_count == 55


def test_a_purge_of_many_pages_removes_them_all(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle, "PAGE", 4)
    det = UebaDetector(engine, UebaSettings(**UEBA))
    hosts = [f"h{i:02d}" for i in range(11)]
    det.detect(events([tool_event(h, at(0, 10)) for h in [*hosts, "kept", "spared"]]))
    det.persist()
    for h in [*hosts, "spared"]:
        written_long_ago(engine, h)
    det.detect(events([tool_event("spared", at(1, 10))]))  # changed, in the middle of the pages

    assert idle.purge_idle_baselines(engine, time.time() - 30 * DAY, detector=det) == 11
    assert stored(engine) == {host_id("kept"), host_id("spared")}


def test_without_a_detector_the_store_alone_is_purged_and_a_stop_returns_between_pages(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idle, "PAGE", 2)
    det = UebaDetector(engine, UebaSettings(**UEBA))
    det.detect(events([tool_event(h, at(0, 10)) for h in ("a", "b", "c")]))
    det.persist()
    for h in ("a", "b", "c"):
        written_long_ago(engine, h)
    stopping = threading.Event()
    stopping.set()
    assert idle.purge_idle_baselines(engine, time.time(), stopping) == 0
    assert len(stored(engine)) == 3
    assert idle.purge_idle_baselines(engine, time.time() - 30 * DAY) == 3
    assert stored(engine) == set()


@pytest.mark.parametrize(("days", "present"), [(0, False), (90, True)])
def test_the_chore_runs_only_when_a_period_is_set(tmp_path: Path, days: int, present: bool) -> None:
    class App:
        settings = Settings(data_dir=tmp_path, maintenance={"ueba_baseline_idle_days": days})
        engine = None

    assert ("ueba_idle_baselines" in [c.name for c in builtin_chores(App())]) is present


def test_the_period_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ueba_baseline_idle_days"):
        Settings(data_dir=tmp_path, maintenance={"ueba_baseline_idle_days": -1})


def test_the_chore_deletes_through_the_settings_period_and_this_nodes_detector_forgets(
    engine: Engine, tmp_path: Path
) -> None:
    class App:
        settings = Settings(data_dir=tmp_path, maintenance={"ueba_baseline_idle_days": 7}, ueba=UEBA)

    aw = App()
    aw.engine = engine
    det = aw.ueba_detector = UebaDetector(engine, aw.settings.ueba)
    det.detect(events([tool_event(h, at(0, 10)) for h in ("old", "new")]))
    det.persist()
    written_long_ago(engine, "old", days=10)
    [chore] = [c for c in builtin_chores(aw) if c.name == "ueba_idle_baselines"]
    assert chore.run(threading.Event()) == 1
    assert stored(engine) == {host_id("new")}
    assert det.counts()["in_memory"] == 1


def test_on_a_server_the_chore_drops_an_idle_baseline_from_store_and_memory(tmp_path: Path, database_url: str) -> None:
    cfg = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={"enabled": False},
        ueba={**UEBA, "persist_interval_s": 1},
        maintenance={"interval_s": 0.5, "ueba_baseline_idle_days": 7},
    )
    with run_server(cfg) as s, s.client() as c:
        ingest(c, [tool_event(h, at(0, 10)) for h in ("srv-idle", "srv-busy")])
        engine = s.aw.engine
        wait_for(lambda: stored(engine) == {host_id("srv-idle"), host_id("srv-busy")})
        written_long_ago(engine, "srv-idle", days=10)

        wait_for(lambda: stored(engine) == {host_id("srv-busy")})
        assert c.get(f"/api/v1/ueba/baselines/{host_id('srv-idle')}").status_code == 404
        assert c.get(f"/api/v1/ueba/baselines/{host_id('srv-busy')}").status_code == 200
        ingest(c, [tool_event("srv-idle", at(1, 10))])
        again = c.get(f"/api/v1/ueba/baselines/{host_id('srv-idle')}")
        assert again.status_code == 200 and again.json()["event_count"] == 1
