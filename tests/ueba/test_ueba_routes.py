"""The anomaly timeline counted by hand, and every UEBA route refusing bad input with a 4xx
that names the field, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from agentwatch.config import Settings
from tests.detect.helpers import wait_for
from tests.support.server import RunningServer, open_settings, run_server
from tests.ueba.helpers import DAY0, UEBA, anomalies, at, host_id, ingest, ordinary_days, tool_event

TIMELINE = "/api/v1/anomaly/timeline"
FEB = DAY0 + timedelta(days=30)  # 2026-02-04: a month no other test of this module uses


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(base.model_copy(update={"ueba": Settings(ueba=UEBA).ueba})) as s:
        yield s


def test_the_timeline_buckets_anomalies_by_event_time(srv: RunningServer) -> None:
    host = "timeline-host"
    with srv.client() as c:
        ingest(c, ordinary_days(host, base=FEB))
        # three off-hours calls in three requests: 03:10, 03:40 (hour 3 then holds 1/55 < 2 %),
        # 05:20; more than the 300 s dedup window apart, so three alerts
        for hour, minute in ((3, 10), (3, 40), (5, 20)):
            ingest(c, [tool_event(host, at(3, hour, minute, FEB))])
        wait_for(lambda: len(anomalies(c, host)) == 3)
        until = at(3, 5, 30, FEB)  # the window ends with the 05:00 bucket: 00:00 to 06:00
        r = c.get(TIMELINE, params={"range": "6h", "resolution": "1h", "until": until})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["start"] == "2026-02-07T00:00:00Z"
        assert [b["ts"][11:16] for b in doc["buckets"]] == ["00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]
        assert [b["anomalies"] for b in doc["buckets"]] == [0, 0, 0, 2, 0, 1]
        assert [b["alerts"] for b in doc["buckets"]] == [0, 0, 0, 2, 0, 1]
        assert [b["max_score"] for b in doc["buckets"]] == [None, None, None, 0.6, None, 0.6]
        assert doc["totals"] == {"anomalies": 3, "max_score": 0.6}
        # 15-minute buckets: 05:30 is on a bucket boundary, so the window is 23:45 to 05:45
        fine = c.get(TIMELINE, params={"range": "6h", "resolution": "15m", "until": until}).json()
        assert len(fine["buckets"]) == 24 and fine["start"] == "2026-02-06T23:45:00Z"
        hit = {i for i, b in enumerate(fine["buckets"]) if b["anomalies"]}
        assert hit == {13, 15, 22}  # 03:00, 03:30 and 05:15
        same = c.get(TIMELINE, params={"range": "6h", "resolution": "1h", "until": until, "source": "oisp"}).json()
        assert same["buckets"] == doc["buckets"]
        other = c.get(TIMELINE, params={"range": "6h", "resolution": "1h", "until": until, "source": "aop"}).json()
        assert other["totals"]["anomalies"] == 0
        later = c.get(TIMELINE, params={"range": "1h", "resolution": "5m", "until": at(4, 5, 30, FEB)}).json()
        assert len(later["buckets"]) == 12 and later["totals"]["anomalies"] == 0


BAD = [
    (TIMELINE, {"range": "2h"}, "range:"),
    (TIMELINE, {"resolution": "10s"}, "resolution:"),
    (TIMELINE, {"range": "7d", "resolution": "1m"}, "resolution: 1m over 7d makes 10080 buckets"),
    (TIMELINE, {"until": "yesterday"}, "until:"),
    (TIMELINE, {"until": "0001-01-01T00:00:00Z"}, "until: must be between"),
    (TIMELINE, {"until": "9999-12-31T23:00:00Z"}, "until: must be between"),
    (TIMELINE, {"source": "Not A Source"}, "source:"),
    (TIMELINE, {"source": "x" * 65}, "source:"),
    (TIMELINE, {"colour": "red"}, "colour: unknown query parameter"),
    ("/api/v1/ueba/anomalies", {"limit": "0"}, "limit:"),
    ("/api/v1/ueba/anomalies", {"limit": "1001"}, "limit:"),
    ("/api/v1/ueba/anomalies", {"min_score": "1.5"}, "min_score:"),
    ("/api/v1/ueba/anomalies", {"reason": "vibes"}, "reason:"),
    ("/api/v1/ueba/anomalies", {"entity_id": "bob"}, "entity_id: must be a UUID"),
    ("/api/v1/ueba/anomalies", {"cursor": "not-ours"}, "cursor:"),
    ("/api/v1/ueba/anomalies", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until:"),
    ("/api/v1/ueba/anomalies", {"since": "2026-13-01"}, "since:"),
    ("/api/v1/ueba/anomalies/nope", {}, "anomaly_id: must be a UUID"),
    ("/api/v1/ueba/baselines", {"status": "asleep"}, "status:"),
    ("/api/v1/ueba/baselines", {"entity_type": "planet"}, "entity_type:"),
    ("/api/v1/ueba/baselines", {"limit": "501"}, "limit:"),
    ("/api/v1/ueba/baselines/" + "9" * 50, {}, "entity_id: must be a UUID"),
    ("/api/v1/entities/not-a-uuid/baseline", {}, "entity_uuid: must be a UUID"),
    ("/api/v1/ueba/stats", {"verbose": "1"}, "verbose: unknown query parameter"),
]


@pytest.mark.parametrize(("path", "params", "message"), BAD)
def test_bad_input_is_a_400_naming_the_field(
    srv: RunningServer, path: str, params: dict[str, str], message: str
) -> None:
    with srv.client() as c:
        r = c.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(message), r.text


def test_unknown_ids_are_404_and_a_bad_reset_id_is_400(srv: RunningServer) -> None:
    with srv.client() as c:
        assert c.get(f"/api/v1/ueba/anomalies/{uuid.uuid4()}").status_code == 404
        assert c.get(f"/api/v1/ueba/baselines/{uuid.uuid4()}").status_code == 404
        assert c.delete(f"/api/v1/ueba/baselines/{uuid.uuid4()}").status_code == 404
        bad = c.delete("/api/v1/ueba/baselines/robert')--")
        assert bad.status_code == 400 and bad.json()["error"]["message"] == "entity_id: must be a UUID"
        upper = c.get(f"/api/v1/ueba/baselines/{host_id('nobody').upper()}")  # any UUID spelling
        assert upper.status_code == 404
