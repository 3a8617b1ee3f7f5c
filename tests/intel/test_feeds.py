"""Indicator feeds (``intel.feeds``) fetched from a fake list server (a real HTTP server on
127.0.0.5), and ``agentwatch intel import`` sending a file to a running server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.config import Settings
from agentwatch.intel.settings import IntelSettings
from tests.cli.test_cli_hunt import run
from tests.detect.helpers import wait_for
from tests.support.server import RunningServer, free_port, run_server, serve_asgi

FEED_HOST = "127.0.0.5"
SECRET = "feed-key-5d1e0c"
LIST = b"""# a list of bad things
198.51.100.7
evil-feed.example   # trailing comment
; another comment style

not an indicator at all
203.0.113.0/24
"""


@dataclass
class FakeFeed:
    url: str
    body: bytes = LIST
    status: int = 200
    fetched: int = 0


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFeed]:
    port = free_port(FEED_HOST)
    feed = FakeFeed(url=f"http://{FEED_HOST}:{port}")

    async def listing(request: Request) -> Response:
        feed.fetched += 1
        return Response(feed.body, status_code=feed.status, media_type="text/plain")

    app = Starlette(routes=[Route("/list.txt", listing), Route("/list.csv", listing)])
    with serve_asgi(app, FEED_HOST, port):
        yield feed


@pytest.fixture(autouse=True)
def _reset(fake: FakeFeed) -> None:
    fake.body, fake.status = LIST, 200


def feed_settings(fake: FakeFeed, **kw: Any) -> dict[str, Any]:
    return {"id": "bad-list", "url": f"{fake.url}/list.txt?key={SECRET}", "allow_private": True, **kw}


@pytest.fixture(scope="module")
def srv(fake: FakeFeed, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    intel = IntelSettings(feeds=[feed_settings(fake, severity=6)])
    with run_server(cfg.model_copy(update={"intel": intel})) as s:
        yield s


def status(c: Any, feed_id: str) -> dict[str, Any]:
    r = c.get("/api/v1/intel/feeds")
    assert r.status_code == 200, r.text
    return {f["id"]: f for f in r.json()["feeds"]}[feed_id]


def values(c: Any, source: str) -> set[str]:
    doc = c.get("/api/v1/intel/iocs", params={"source": source, "limit": 1000}).json()
    return {i["value"] for i in doc["iocs"]}


def test_a_feed_is_fetched_at_start_and_its_entries_become_indicators(srv: RunningServer) -> None:
    with srv.client() as c:
        done = wait_for(lambda: status(c, "bad-list")["last_success_at"] and status(c, "bad-list"))
        assert (done["indicators"], done["rejected"], done["last_error"]) == (3, 1, None)
        assert values(c, "feed:bad-list") == {"198.51.100.7", "evil-feed.example", "203.0.113.0/24"}
        ioc = c.get("/api/v1/intel/iocs", params={"q": "evil-feed"}).json()["iocs"][0]
        assert ioc["severity"] == 6
        # the query of the feed's URL may hold a credential: never shown
        assert SECRET not in c.get("/api/v1/intel/feeds").text
        assert done["url"].endswith("/list.txt (query hidden)")


def test_a_sync_follows_the_list_adding_updating_and_removing(srv: RunningServer, fake: FakeFeed) -> None:
    with srv.client() as c:
        wait_for(lambda: status(c, "bad-list")["last_success_at"])
        fake.body = b"198.51.100.7\nnew-feed.example\n"
        r = c.post("/api/v1/intel/feeds/bad-list/sync")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["created"], doc["updated"], doc["removed"]) == (1, 1, 2)
        assert (doc["changed"], doc["unchanged"]) == (0, 1)  # 198.51.100.7 was listed as stored
        assert values(c, "feed:bad-list") == {"198.51.100.7", "new-feed.example"}
        # the matcher sees the change at once
        hit = c.post("/api/v1/intel/enrich", json={"indicator": "www.new-feed.example"}).json()
        assert [m["value"] for m in hit["matches"]] == ["new-feed.example"]


def test_a_second_sync_of_the_same_list_rewrites_nothing(srv: RunningServer, fake: FakeFeed) -> None:
    with srv.client() as c:
        wait_for(lambda: status(c, "bad-list")["last_success_at"])
        fake.body = b"198.51.100.9\nsteady-feed.example\n203.0.113.0/24\n"
        assert c.post("/api/v1/intel/feeds/bad-list/sync").status_code == 200
        before = c.get("/api/v1/intel/iocs", params={"source": "feed:bad-list", "limit": 1000}).json()["iocs"]
        r = c.post("/api/v1/intel/feeds/bad-list/sync")
        assert r.status_code == 200, r.text
        doc = r.json()
        counted = ("indicators", "created", "changed", "unchanged", "updated", "removed", "held_by_others")
        assert {k: doc[k] for k in counted} == {
            "indicators": 3,
            "created": 0,
            "changed": 0,
            "unchanged": 3,
            "updated": 3,
            "removed": 0,
            "held_by_others": 0,
        }
        after = c.get("/api/v1/intel/iocs", params={"source": "feed:bad-list", "limit": 1000}).json()["iocs"]
        assert after == before  # updated_at included
        assert status(c, "bad-list") == doc


def test_a_failed_fetch_changes_nothing_and_is_kept_in_the_status(srv: RunningServer, fake: FakeFeed) -> None:
    with srv.client() as c:
        wait_for(lambda: status(c, "bad-list")["last_success_at"])
        before = values(c, "feed:bad-list")
        fake.status = 500
        r = c.post("/api/v1/intel/feeds/bad-list/sync")
        assert r.status_code == 502 and r.json()["error"]["code"] == "BAD_GATEWAY"
        assert "answered 500" in r.json()["error"]["message"] and SECRET not in r.text
        assert status(c, "bad-list")["last_error"] == "the feed answered 500"
        assert values(c, "feed:bad-list") == before
        assert c.post("/api/v1/intel/feeds/nowhere/sync").status_code == 404
        assert c.post("/api/v1/intel/feeds/" + "x" * 300 + "/sync").status_code == 404


def test_a_list_over_max_bytes_is_refused(tmp_path: Path, fake: FakeFeed) -> None:
    fake.body = b"\n".join(f"10.0.{i // 256}.{i % 256}".encode() for i in range(2000))
    cfg = Settings(data_dir=tmp_path, auth={"enabled": False})
    cfg = cfg.model_copy(update={"intel": IntelSettings(feeds=[feed_settings(fake, max_bytes=1024)])})
    with run_server(cfg) as s, s.client() as c:
        failed = wait_for(lambda: status(c, "bad-list")["last_error"])
        assert "max_bytes" in failed
        assert c.get("/api/v1/intel/iocs").json()["total"] == 0


def test_csv_columns_and_the_store_cap(tmp_path: Path, fake: FakeFeed) -> None:
    fake.body = b"first_seen,indicator,kind\n2026-12-01,evil-a.example,domain\n2026-12-02,evil-b.example,domain\n"
    feed = feed_settings(fake, format="csv", column=1, type="domain")
    cfg = Settings(data_dir=tmp_path, auth={"enabled": False})
    cfg = cfg.model_copy(update={"intel": IntelSettings(feeds=[feed], max_indicators=2)})
    with run_server(cfg) as s, s.client() as c:
        done = wait_for(lambda: status(c, "bad-list")["last_success_at"] and status(c, "bad-list"))
        assert (done["indicators"], done["rejected"]) == (2, 1)  # the header row is no domain
        fake.body += b"2026-12-03,evil-c.example,domain\n"
        r = c.post("/api/v1/intel/feeds/bad-list/sync")
        assert r.status_code == 507 and "intel.max_indicators" in r.json()["error"]["message"]
        assert values(c, "feed:bad-list") == {"evil-a.example", "evil-b.example"}


def test_feed_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        IntelSettings(feeds=[{"id": "x", "url": "http://127.0.0.1/list"}])
    with pytest.raises(ValidationError, match="unique"):
        IntelSettings(feeds=[{"id": "x", "url": "https://a.example/l"}, {"id": "x", "url": "https://b.example/l"}])
    with pytest.raises(ValidationError, match="id"):
        IntelSettings(feeds=[{"id": "Bad Id", "url": "https://a.example/l"}])
    with pytest.raises(ValidationError, match="interval_s"):
        IntelSettings(feeds=[{"id": "x", "url": "https://a.example/l", "interval_s": 1}])


def last_line(text: str) -> str:
    """What the command printed last (the in-process server of this module logs to stdout too)."""
    return text.strip().splitlines()[-1]


def test_the_import_command_sends_a_file_and_counts_what_the_server_did(srv: RunningServer, tmp_path: Path) -> None:
    listing = tmp_path / "iocs.txt"
    listing.write_text("# team list\n192.0.2.55\nimport-a.example\nnonsense\n")
    ran = run(["intel", "import", str(listing), "--source", "team", "--server", srv.url], tmp_path)
    assert ran.code == 0, ran.stderr
    assert last_line(ran.stdout) == "2 created, 0 updated, 1 refused"
    assert "entry 3:" in ran.stderr
    with srv.client() as c:
        assert values(c, "team") == {"192.0.2.55", "import-a.example"}
    again = run(["intel", "import", str(listing), "--source", "team", "--server", srv.url], tmp_path)
    assert last_line(again.stdout) == "0 created, 2 updated, 1 refused"
    junk = tmp_path / "junk.txt"
    junk.write_text("nonsense\nmore nonsense\n")
    none = run(["intel", "import", str(junk), "--server", srv.url], tmp_path)
    assert none.code == 0 and last_line(none.stdout) == "0 created, 0 updated, 2 refused"
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert run(["intel", "import", str(empty), "--server", srv.url], tmp_path).code == 1
