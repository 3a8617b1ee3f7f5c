"""Touch retention (``maintenance.touches_retention_days``): touches older than the cutoff are
deleted oldest first, page by page, except those whose alert is still open or acknowledged,
or is linked to a case that is not closed; the tokens keep their counts. On SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from agentwatch.config import Settings
from agentwatch.maintenance import builtin_chores
from agentwatch.soc.cases.store import create_case
from agentwatch.soc.honeytokens import retention, store
from agentwatch.soc.honeytokens import touches as touch_rows
from agentwatch.soc.honeytokens.schema import honeytoken_events
from agentwatch.store.alerts_schema import alerts
from tests.detect.helpers import llm_request, wait_for, with_detection
from tests.honeytokens.conftest import TOKENS, create, touches
from tests.support.server import run_server

DAY = 86_400.0
NOW = time.time()


def token(engine: Engine, name: str) -> Any:
    row = {
        "name": name,
        "kind": "api_key",
        "style": "generic",
        "description": "",
        "location": "",
        "username": None,
        "hint": "sk-…",
        "needles": "[]",
        "track_digest": None,
        "created_by": "test",
    }
    doc = store.create(engine, row, 1000)
    assert doc is not None
    with engine.connect() as conn:
        return store.names(conn, [doc["id"]])[doc["id"]]


def touch(engine: Engine, tok: Any, ts: float, *, with_alert: bool = True) -> None:
    """A tracking-URL touch of ``tok`` at ``ts``, with its alert (as the tracker stores it)."""
    row = touch_rows.track_row(tok.id, ts, "127.0.0.1", "curl")
    with engine.begin() as conn:
        if with_alert:
            f = touch_rows.finding(tok, 8, event=None, ts=ts, where="GET /track", detail={})
            touch_rows.record(conn, [(f, row)], 3600.0)
        else:
            store.add_touches(conn, [{**row, "alert_id": None}])


def alert_of(engine: Engine, tok: Any) -> str:
    with engine.connect() as conn:
        return conn.execute(
            select(honeytoken_events.c.alert_id).where(honeytoken_events.c.token_id == tok.id)
        ).scalar_one()


def close_alert(engine: Engine, alert_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(status="closed"))


def kept(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(honeytoken_events.c.token_id, honeytoken_events.c.ts).order_by(honeytoken_events.c.ts)
        )
        return [r.token_id for r in rows]


def test_old_touches_go_unless_an_open_alert_or_case_holds_them(engine: Engine) -> None:
    closed, still_open, acked, in_case, in_closed_case, bare, recent = (
        token(engine, n) for n in ("closed", "open", "acked", "case", "closed-case", "bare", "recent")
    )
    for i, tok in enumerate((closed, still_open, acked, in_case, in_closed_case)):
        touch(engine, tok, NOW - 40 * DAY + i)
    touch(engine, bare, NOW - 35 * DAY, with_alert=False)
    touch(engine, recent, NOW - DAY)
    for tok in (closed, in_case, in_closed_case):
        close_alert(engine, alert_of(engine, tok))
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == alert_of(engine, acked)).values(status="acknowledged"))
    case = {"title": "t", "severity": 5, "status": "investigating"}
    create_case(engine, {**case, "alert_ids": [alert_of(engine, in_case)]}, "analyst")
    create_case(engine, {**case, "status": "closed", "alert_ids": [alert_of(engine, in_closed_case)]}, "analyst")

    assert retention.purge_touches(engine, NOW - 30 * DAY) == 3

    assert kept(engine) == [still_open.id, acked.id, in_case.id, recent.id]
    # the token keeps its history: how often it was touched, and when last
    doc = store.get(engine, closed.id)
    assert doc is not None and doc["touches"] == 1 and doc["last_touched_at"] is not None
    assert retention.purge_touches(engine, NOW - 30 * DAY) == 0  # the held ones stay held


def test_a_purge_of_many_pages_passes_held_touches_and_removes_the_rest(engine: Engine, monkeypatch) -> None:
    monkeypatch.setattr(retention, "PAGE", 4)
    held, gone = token(engine, "held"), token(engine, "gone")
    touch(engine, held, NOW - 50 * DAY)  # first of all, held by its open alert
    for i in range(13):
        touch(engine, gone, NOW - 49 * DAY + i, with_alert=False)
    touch(engine, gone, NOW)
    assert retention.purge_touches(engine, NOW - DAY) == 13
    assert kept(engine) == [held.id, gone.id]


def test_a_stopping_purge_returns_between_two_pages(engine: Engine, monkeypatch) -> None:
    monkeypatch.setattr(retention, "PAGE", 3)
    tok = token(engine, "t")
    for i in range(7):
        touch(engine, tok, NOW - 50 * DAY + i, with_alert=False)
    stopping = threading.Event()
    stopping.set()
    assert retention.purge_touches(engine, NOW, stopping) == 0
    assert len(kept(engine)) == 7


@pytest.mark.parametrize(("days", "present"), [(0, False), (30, True)])
def test_the_chore_runs_only_when_a_period_is_set(tmp_path: Path, days: int, present: bool) -> None:
    class App:
        settings = Settings(data_dir=tmp_path, maintenance={"touches_retention_days": days})
        engine = None

    assert ("touches_retention" in [c.name for c in builtin_chores(App())]) is present


def test_the_period_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="touches_retention_days"):
        Settings(data_dir=tmp_path, maintenance={"touches_retention_days": -1})


def test_the_chore_deletes_through_the_settings_period(engine: Engine, tmp_path: Path) -> None:
    tok = token(engine, "chore")
    touch(engine, tok, time.time() - 10 * DAY, with_alert=False)
    touch(engine, tok, time.time() - 2 * DAY, with_alert=False)

    class App:
        settings = Settings(data_dir=tmp_path, maintenance={"touches_retention_days": 7})

    App.engine = engine
    [chore] = [c for c in builtin_chores(App()) if c.name == "touches_retention"]
    assert chore.run(threading.Event()) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(honeytoken_events)).scalar_one() == 1


def test_on_a_server_an_old_touch_stays_while_its_alert_is_open_and_goes_once_closed(
    tmp_path: Path, database_url: str
) -> None:
    cfg = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={"enabled": False},
        honeytokens={"public_url": "https://canary.example"},
        maintenance={"interval_s": 0.5, "touches_retention_days": 7},
    )
    long_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 10 * DAY))
    with run_server(with_detection(cfg)) as s, s.client() as c:
        key = create(c, name="old key", kind="api_key")
        r = c.post("/api/v1/ingest", json=[llm_request(f"KEY={key['value']}", ts=long_ago)])
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        [seen] = wait_for(lambda: touches(c, key["id"]))
        maintenance = s.aw.components["maintenance"]
        rounds = maintenance.rounds
        wait_for(lambda: maintenance.rounds >= rounds + 2)
        assert [t["id"] for t in touches(c, key["id"])] == [seen["id"]]  # its alert is open

        assert c.patch(f"/api/v1/alerts/{seen['alert_id']}", json={"status": "closed"}).status_code == 200
        wait_for(lambda: touches(c, key["id"]) == [])
        assert c.get(f"{TOKENS}/{key['id']}").json()["touches"] == 1
