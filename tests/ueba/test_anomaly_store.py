"""The detector and the anomaly store without a server, on both stores: an anomaly is stored
with its alert in one transaction, read back, and pruned after the retention."""

from __future__ import annotations

import time

from sqlalchemy import Engine, func, select

from agentwatch.events.entities import derive
from agentwatch.events.model import Event, parse_ts
from agentwatch.store.alerts_schema import alerts
from agentwatch.ueba import anomalies
from agentwatch.ueba.detector import UebaDetector
from agentwatch.ueba.settings import UebaSettings
from tests.ueba.helpers import UEBA, at, ordinary_days, tool_event


def events(docs: list[dict]) -> list[Event]:
    out = []
    for i, d in enumerate(docs):
        ts = parse_ts(d["ts"])
        e = Event(body=d, event_id=f"store-{i}-{ts}", event_type=d["event_type"], ts=ts, received_at=ts)
        e.entities = derive(e)
        out.append(e)
    return out


def test_an_anomaly_is_stored_with_its_alert_and_pruned_after_the_retention(engine: Engine) -> None:
    det = UebaDetector(engine, UebaSettings(**UEBA))
    assert det.detect(events(ordinary_days("store-host"))) == []
    (finding,) = det.detect(events([tool_event("store-host", at(3, 23, 30), "new_tool")]))
    assert (
        finding.alert_type == "ueba" and finding.rule_id == "AW-UEBA-NEW_TEMPLATE"
    )  # a tie (0.6, 0.6): the kind listed first
    assert finding.dedup_key == f"ueba:{finding.details['anomaly']['entity']['id']}"
    anomalies.record(engine, [finding])
    assert finding.stored_as is not None and finding.stored_as[1] is True
    stored = anomalies.get(engine, finding.details["anomaly"]["id"])
    assert stored is not None and stored["alert_id"] == finding.stored_as[0]["id"]
    assert [r["kind"] for r in stored["reasons"]] == ["new_template", "rare_hour"] and stored["score"] == 0.84
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alerts).where(alerts.c.type == "ueba")).scalar_one() == 1
    assert anomalies.prune(engine, time.time() - 60) == 0  # raised just now: kept
    assert anomalies.prune(engine, time.time() + 1) == 1
    assert anomalies.get(engine, finding.details["anomaly"]["id"]) is None
