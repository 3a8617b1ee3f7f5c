"""A feed manages only the indicators it brought: an indicator a person added through the API
(or another source holds) keeps its source, fields and life when a feed lists the same value,
and stays when the feed stops listing it. On SQLite and PostgreSQL, with a fake list server on
127.0.0.7."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.config import Settings
from agentwatch.intel.settings import IntelSettings
from tests.detect.helpers import wait_for
from tests.intel.fake_list import FakeList, serve_list
from tests.support.server import RunningServer, run_server

FEED_HOST = "127.0.0.7"
IOCS = "/api/v1/intel/iocs"
SYNC = "/api/v1/intel/feeds/owned-list/sync"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeList]:
    with serve_list(FEED_HOST, b"# empty at start\n") as listing:
        yield listing


@pytest.fixture(scope="module")
def srv(fake: FakeList, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    feed = {"id": "owned-list", "url": fake.url, "allow_private": True, "severity": 4, "interval_s": 3600}
    with run_server(cfg.model_copy(update={"intel": IntelSettings(feeds=[feed])})) as s:
        yield s


def sync(c: Any) -> dict[str, Any]:
    r = c.post(SYNC)
    assert r.status_code == 200, r.text
    return r.json()


def one(c: Any, value: str) -> dict[str, Any] | None:
    found = [i for i in c.get(IOCS, params={"q": value, "limit": 1000}).json()["iocs"] if i["value"] == value]
    return found[0] if found else None


def test_a_feed_listing_a_persons_indicator_leaves_it_as_the_person_made_it(srv: RunningServer, fake: FakeList) -> None:
    tag = uuid.uuid4().hex[:8]
    mine, theirs = f"mine-{tag}.example", f"feed-only-{tag}.example"
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86_400))
    with srv.client() as c:
        wait_for(lambda: c.get("/api/v1/intel/feeds").json()["feeds"][0]["last_success_at"])
        item = {"value": mine, "source": "analyst", "severity": 9, "description": "case 17", "tags": ["case-17"]}
        r = c.post(IOCS, json={"iocs": [{**item, "expires_at": later}]})
        assert r.status_code == 200 and r.json()["created"] == 1, r.text
        made = one(c, mine)
        assert made is not None

        fake.body = f"{mine}\n{theirs}\n".encode()
        done = sync(c)
        assert (done["created"], done["updated"], done["removed"]) == (1, 0, 0)
        assert (done["changed"], done["unchanged"]) == (0, 0)
        assert done["held_by_others"] == 1
        kept = one(c, mine)
        assert kept == made  # source, severity, description, tags, expiry, times: as the person left them
        assert one(c, theirs)["source"] == "feed:owned-list"  # type: ignore[index]

        fake.body = f"{theirs}\n".encode()  # the feed no longer lists the person's value
        done = sync(c)
        assert (done["created"], done["updated"], done["removed"], done["held_by_others"]) == (0, 1, 0, 0)
        assert (done["changed"], done["unchanged"]) == (0, 1)
        assert one(c, mine) == made
        hit = c.post("/api/v1/intel/enrich", json={"indicator": mine}).json()
        assert [(m["value"], m["source"], m["severity"]) for m in hit["matches"]] == [(mine, "analyst", 9)]


def test_a_person_taking_over_a_feeds_indicator_keeps_it_when_the_feed_drops_it(
    srv: RunningServer, fake: FakeList
) -> None:
    tag = uuid.uuid4().hex[:8]
    value = f"taken-{tag}.example"
    with srv.client() as c:
        fake.body = f"{value}\n".encode()
        assert sync(c)["created"] == 1
        assert one(c, value)["source"] == "feed:owned-list"  # type: ignore[index]
        r = c.post(IOCS, json={"iocs": [{"value": value, "source": "analyst", "severity": 10}]})
        assert r.status_code == 200 and r.json()["updated"] == 1, r.text
        fake.body = b"# nothing listed now\n"
        done = sync(c)
        assert done["removed"] == 0
        kept = one(c, value)
        assert kept is not None and (kept["source"], kept["severity"]) == ("analyst", 10)
