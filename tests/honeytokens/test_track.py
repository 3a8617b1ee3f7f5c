"""The public tracking route: a tripped canary URL records a touch and raises an alert, answers
the same whatever the id, and is rate-limited, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentwatch.config import Settings
from tests.detect.helpers import wait_for
from tests.honeytokens.conftest import TOKENS, create, touches
from tests.support.server import RunningServer, run_server
from tests.support.windows import wait_out_window_edge


def path_of(url_token: dict[str, Any]) -> str:
    return url_token["value"].removeprefix("https://canary.example")


def total(c: Any) -> int:
    return c.get(f"{TOKENS}/events", params={"source": "track"}).json()["total"]


def test_a_tripped_url_records_the_client_and_raises_an_alert(srv: RunningServer) -> None:
    with srv.client() as c:
        url = create(c, name="wiki canary", kind="url", location="wiki/Onboarding")
        r = c.get(path_of(url), headers={"User-Agent": "agent-fetcher/1.0"}, params={"utm": "x"})
        assert r.status_code == 204 and r.content == b""
        assert r.headers["cache-control"] == "no-store"
        [touch] = wait_for(lambda: touches(c, url["id"]))
        assert (touch["source"], touch["client"], touch["user_agent"]) == ("track", "127.0.0.1", "agent-fetcher/1.0")
        assert touch["event_id"] is None
        found = c.get(f"/api/v1/alerts/{touch['alert_id']}").json()
        assert (found["type"], found["severity"]) == ("honeytoken", 8)
        assert found["details"]["client"] == "127.0.0.1" and found["details"]["honeytoken"]["id"] == url["id"]
        c.get(path_of(url))
        wait_for(lambda: len(touches(c, url["id"])) == 2)
        assert c.get(f"/api/v1/alerts/{touch['alert_id']}").json()["count"] == 2  # one alert per token


def test_unknown_revoked_and_other_kinds_get_the_same_answer_and_record_nothing(srv: RunningServer) -> None:
    with srv.client() as c:
        live = create(c, name="live canary", kind="url")
        revoked = create(c, name="revoked canary", kind="url")
        marker = create(c, name="not a url", kind="text")
        assert c.delete(f"{TOKENS}/{revoked['id']}").status_code == 204
        before = total(c)
        known = c.get(path_of(live))
        for path in (
            f"{TOKENS}/track/{'Q' * 32}",
            path_of(revoked),
            f"{TOKENS}/track/{marker['value']}",
        ):
            r = c.get(path)
            assert (r.status_code, r.content, dict(r.headers) | {"date": ""}) == (
                known.status_code,
                known.content,
                dict(known.headers) | {"date": ""},
            )
        wait_for(lambda: touches(c, live["id"]))
        c.get(path_of(live))  # the last of the requests: once it is recorded, so would the others be
        wait_for(lambda: len(touches(c, live["id"])) == 2)
        assert total(c) == before + 2
        assert touches(c, revoked["id"]) == [] and touches(c, marker["id"]) == []


def test_malformed_ids_and_long_query_strings_are_400(srv: RunningServer) -> None:
    with srv.client() as c:
        for bad in ("a-b", "x" * 65, "%00abc"):
            r = c.get(f"{TOKENS}/track/{bad}")
            assert r.status_code == 400 and r.json()["error"]["message"].startswith("token_id:"), r.text
        r = c.get(f"{TOKENS}/track/abc", params={"q": "x" * 2100})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("query:")


def test_the_route_is_rate_limited_per_address_and_in_all(tmp_path: Path, database_url: str) -> None:
    limits = {"track_per_address": 3, "track_total": 1000, "public_url": "https://canary.example"}
    limits["track_window_s"] = 3600  # windows are aligned to the epoch: the test stays inside one
    cfg = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False}, honeytokens=limits)
    with run_server(cfg) as s, s.client() as c:
        wait_out_window_edge(3600, margin=30)
        url = create(c, name="limited", kind="url")
        assert [c.get(path_of(url)).status_code for _ in range(3)] == [204, 204, 204]
        r = c.get(path_of(url))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        wait_for(lambda: len(touches(c, url["id"])) == 3)
        s.aw.settings.honeytokens.track_per_address = 1000
        # the whole budget counted the 3 let through (a request refused per address is not charged to it)
        s.aw.settings.honeytokens.track_total = 4
        assert c.get(path_of(url)).status_code == 204
        assert c.get(path_of(url)).status_code == 429


def test_past_the_total_budget_a_live_canary_is_still_recorded(tmp_path: Path, database_url: str) -> None:
    """A flood from many addresses that uses the whole budget up cannot hide a canary fetch: the
    fetch gets the same 429 as any other request, and its touch and alert are recorded."""
    limits = {"track_per_address": 1000, "track_total": 2, "public_url": "https://canary.example", "refresh_s": 0.1}
    limits["track_window_s"] = 3600  # windows are aligned to the epoch: the test stays inside one
    cfg = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False}, honeytokens=limits)
    with run_server(cfg) as s, s.client() as c:
        wait_out_window_edge(3600, margin=30)
        live = create(c, name="flooded canary", kind="url")
        revoked = create(c, name="revoked canary", kind="url")
        assert c.delete(f"{TOKENS}/{revoked['id']}").status_code == 204
        unknown = f"{TOKENS}/track/{'Q' * 32}"
        assert [c.get(unknown).status_code for _ in range(2)] == [204, 204]  # the flood uses the budget up
        flooded = c.get(unknown)
        fetched = c.get(path_of(live))
        assert fetched.status_code == flooded.status_code == 429
        assert fetched.json() == flooded.json() and fetched.json()["error"]["code"] == "RATE_LIMITED"
        assert c.get(path_of(revoked)).status_code == 429
        [touch] = wait_for(lambda: touches(c, live["id"]))
        assert (touch["source"], touch["client"]) == ("track", "127.0.0.1")
        assert c.get(f"/api/v1/alerts/{touch['alert_id']}").json()["type"] == "honeytoken"
        c.get(path_of(live))  # the last request: once it is recorded, the one before it would be
        wait_for(lambda: len(touches(c, live["id"])) == 2)
        assert touches(c, revoked["id"]) == []
        assert total(c) == 2
