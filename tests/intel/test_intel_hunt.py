"""The intel capability used as a careless or hostile client, feed or agent would: odd
spellings of addresses and URLs, bytes PostgreSQL refuses, concurrent writers, hostile
feeds and lists too large for one request, on a real server over SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.config import Settings
from agentwatch.intel.indicators import normalize
from agentwatch.intel.settings import IntelSettings
from tests.cli.test_cli_hunt import run
from tests.detect.helpers import wait_for, with_detection
from tests.support.server import RunningServer, free_port, run_server, serve_asgi

IOCS = "/api/v1/intel/iocs"
ENRICH = "/api/v1/intel/enrich"
FEED_HOST = "127.0.0.6"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base)) as s:
        yield s


def unique() -> str:
    return uuid.uuid4().hex[:10]


def add(c: Any, *items: dict[str, Any]) -> dict[str, Any]:
    r = c.post(IOCS, json={"iocs": list(items)})
    assert r.status_code == 200, r.text
    return r.json()


def met(c: Any, indicator: str) -> list[str]:
    r = c.post(ENRICH, json={"indicator": indicator})
    assert r.status_code == 200, r.text
    return sorted(m["value"] for m in r.json()["matches"])


# -- canonical forms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "spelling", "canonical"),
    [
        # a zone names the local interface an address was seen on, not another host
        ("ip", "fe80::1%eth0", "fe80::1"),
        ("cidr", "fe80::%eth0/64", "fe80::/64"),
        # an IPv4 address written as IPv6 (dual-stack sockets report peers so) is that IPv4 address
        ("ip", "::ffff:203.0.113.5", "203.0.113.5"),
        # the scheme's own port is the URL without a port
        ("url", "HTTP://Evil.Example:80/a", "http://evil.example/a"),
        ("url", "https://evil.example:443", "https://evil.example/"),
        ("url", "https://evil.example:8443/a", "https://evil.example:8443/a"),
    ],
)
def test_two_spellings_of_one_indicator_have_one_canonical_form(kind: str, spelling: str, canonical: str) -> None:
    assert normalize(kind, spelling) == canonical


def test_a_dual_stack_or_zoned_address_meets_the_indicators_of_its_address(srv: RunningServer) -> None:
    third = random.randint(0, 255)
    with srv.client() as c:
        add(c, {"value": f"198.51.{third}.0/24"}, {"value": "2001:db8:77::5"})
        assert met(c, f"::ffff:198.51.{third}.9") == [f"198.51.{third}.0/24"]
        assert met(c, "2001:db8:77::5%eth1") == ["2001:db8:77::5"]


def test_a_url_on_an_ipv6_host_without_a_port_meets_the_address(srv: RunningServer) -> None:
    with srv.client() as c:
        add(c, {"value": "2001:db8:78::9"})
        assert met(c, "http://[2001:db8:78::9]/payload") == ["2001:db8:78::9"]
        assert met(c, "http://[2001:db8:78::9]:8080/payload") == ["2001:db8:78::9"]


def test_enriching_a_network_names_the_listed_networks_holding_it(srv: RunningServer) -> None:
    third = random.randint(0, 255)
    with srv.client() as c:
        add(c, {"value": f"100.{third}.0.0/16"})
        assert met(c, f"100.{third}.0.0/16") == [f"100.{third}.0.0/16"]  # the listed network itself
        assert met(c, f"100.{third}.7.0/24") == [f"100.{third}.0.0/16"]  # a network inside it
        assert met(c, f"100.{third}.0.0/15") == []  # wider than the listed one: not inside it


@pytest.mark.parametrize(
    ("event_data", "indicator"),
    [
        ({"dest": {"ip": "2001:DB8:0:0::{n}", "port": 443}}, "2001:db8::{n}"),
        ({"query_name": "fqdn-{n}.example.", "query_type": "A"}, "fqdn-{n}.example"),
    ],
)
def test_enrich_finds_the_entity_of_a_value_events_spelled_otherwise(
    srv: RunningServer, event_data: dict[str, Any], indicator: str
) -> None:
    n = format(random.randint(1, 0xFFFF), "x")  # a group of an IPv6 address, a label of a name
    data = orjson.loads(orjson.dumps(event_data).decode().replace("{n}", n))
    kind = "network.connect" if "dest" in data else "network.dns"
    with srv.client() as c:
        r = c.post("/api/v1/ingest", json=[{"event_type": kind, "host": {"hostname": "h"}, "data": data}])
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        r = c.post(ENRICH, json={"indicator": indicator.replace("{n}", n)})
        assert r.status_code == 200, r.text
        assert r.json()["entity"] is not None and r.json()["entity"]["event_count"] == 1


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"value": "nul.example", "description": "a\x00b"}, "iocs.0.description"),
        ({"value": "nul.example", "severity": True}, "iocs.0.severity"),
        ({"value": "nul.example", "severity": 7.5}, "iocs.0.severity"),
        # a feed's sync removes what its source holds and the list does not: not a source to write to
        ({"value": "nul.example", "source": "feed:some-list"}, "iocs.0.source"),
    ],
)
def test_bad_fields_are_400_naming_the_field(srv: RunningServer, item: dict[str, Any], field: str) -> None:
    with srv.client() as c:
        r = c.post(IOCS, json={"iocs": [item]})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(f"{field}:"), r.text


def test_searching_by_part_of_a_value_ignores_case_on_either_database(srv: RunningServer) -> None:
    tag = unique()
    with srv.client() as c:
        add(c, {"value": f"https://case-{tag}.example/Payload.EXE"})  # a URL keeps the case of its path
        for q in ("Payload.EXE", "payload.exe", "PAYLOAD"):
            found = c.get(IOCS, params={"q": q, "source": "api"}).json()["iocs"]
            assert [i["value"] for i in found if tag in i["value"]] == [f"https://case-{tag}.example/Payload.EXE"], q


# -- the matcher on agent text -------------------------------------------------------------


def test_urls_in_tool_arguments_are_matched_without_the_punctuation_around_them(srv: RunningServer) -> None:
    tag = unique()
    host = f"intel-punct-{tag}"
    with srv.client() as c:
        add(
            c,
            {"value": f"md-{tag}.example"},
            {"value": f"comma-{tag}.example"},
            {"value": f"https://u-{tag}.example/p"},
        )
        text = (
            f"read [the docs](https://md-{tag}.example), then curl https://comma-{tag}.example, "
            f"and (see https://u-{tag}.example/p)."
        )
        event = {
            "event_type": "agent.tool_call",
            "host": {"hostname": host},
            "data": {"tool": {"name": "browse"}, "arguments": {"text": text}},
        }
        r = c.post("/api/v1/ingest", json=[event])
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text

        def alerts() -> list[dict[str, Any]]:
            found = c.get("/api/v1/alerts", params={"type": "ioc", "entity": host}).json()["alerts"]
            return found if len(found) >= 3 else []

        values = {a["details"]["indicator"]["value"] for a in wait_for(alerts, timeout=8)}
        assert values == {f"md-{tag}.example", f"comma-{tag}.example", f"https://u-{tag}.example/p"}


def test_urls_in_prose_without_blanks_around_them_are_matched(srv: RunningServer) -> None:
    tag = unique()
    host = f"intel-cjk-{tag}"
    with srv.client() as c:
        add(c, {"value": f"cjk-{tag}.example"}, {"value": f"https://cjk2-{tag}.example/a"})
        # Chinese and Japanese prose puts no blank before a URL, and ends it with its own punctuation
        text = f"请访问https://cjk-{tag}.example，然后运行。参见「https://cjk2-{tag}.example/a」。"
        event = {
            "event_type": "agent.tool_call",
            "host": {"hostname": host},
            "data": {"tool": {"name": "browse"}, "arguments": {"text": text}},
        }
        r = c.post("/api/v1/ingest", json=[event])
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text

        def alerts() -> list[dict[str, Any]]:
            found = c.get("/api/v1/alerts", params={"type": "ioc", "entity": host}).json()["alerts"]
            return found if len(found) >= 2 else []

        values = {a["details"]["indicator"]["value"] for a in wait_for(alerts, timeout=8)}
        assert values == {f"cjk-{tag}.example", f"https://cjk2-{tag}.example/a"}


# -- concurrent writers -------------------------------------------------------------------


def _together(n: int, work: Any) -> list[Any]:
    """``work(i)`` on n threads released at once; what each answered."""
    start = threading.Barrier(n)
    out: list[Any] = [None] * n

    def one(i: int) -> None:
        start.wait()
        out[i] = work(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_concurrent_batches_of_the_same_indicators_in_other_orders_all_succeed(srv: RunningServer) -> None:
    tag = unique()
    items = [{"value": f"race{i}-{tag}.example"} for i in range(300)]

    def post(i: int) -> tuple[int, str]:
        mine = items[:]
        random.Random(i).shuffle(mine)
        with srv.client() as c:
            r = c.post(IOCS, json={"iocs": mine}, timeout=60)
            return r.status_code, r.text[:300]

    answers = _together(8, post)
    assert all(code == 200 for code, _ in answers), answers
    with srv.client() as c:
        assert c.get(IOCS, params={"q": f"-{tag}.example"}).json()["total"] == 300


def test_concurrent_additions_never_take_the_store_past_its_cap(tmp_path: Path, database_url: str) -> None:
    cfg = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False})
    cfg = cfg.model_copy(update={"intel": IntelSettings(max_indicators=5)})
    with run_server(cfg) as s:

        def post(i: int) -> int:
            with s.client() as c:
                return c.post(IOCS, json={"iocs": [{"value": f"cap{i}.example"}]}, timeout=60).status_code

        codes = _together(16, post)
        with s.client() as c:
            total = c.get(IOCS).json()["total"]
        assert set(codes) <= {200, 507}, codes
        assert total <= 5
        assert codes.count(200) == total


# -- feeds --------------------------------------------------------------------------------


@pytest.fixture
def feed_server() -> Iterator[dict[str, Any]]:
    port = free_port(FEED_HOST)
    state: dict[str, Any] = {"url": f"http://{FEED_HOST}:{port}/list.csv", "body": b""}

    async def listing(request: Request) -> Response:
        return Response(state["body"], media_type="text/csv")

    with serve_asgi(Starlette(routes=[Route("/list.csv", listing)]), FEED_HOST, port):
        yield state


@pytest.mark.parametrize(
    "body",
    [
        b'a,"' + b"x" * 200_000 + b'"\nb,evil.example\n',  # a field past the csv module's limit
        b'a,"unterminated\nb,evil.example\n' + b"c," + b"y" * 200_000 + b"\n",
    ],
)
def test_a_csv_feed_the_reader_chokes_on_is_a_failed_sync_not_a_500(
    tmp_path: Path, feed_server: dict[str, Any], body: bytes
) -> None:
    feed_server["body"] = body
    feed = {"id": "csv-hunt", "url": feed_server["url"], "allow_private": True, "format": "csv", "column": 1}
    feed["interval_s"] = 7 * 86_400
    cfg = Settings(data_dir=tmp_path, auth={"enabled": False})
    cfg = cfg.model_copy(update={"intel": IntelSettings(feeds=[feed])})
    with run_server(cfg) as s, s.client() as c:
        r = c.post("/api/v1/intel/feeds/csv-hunt/sync")
        assert r.status_code == 502, r.text
        assert "csv" in r.json()["error"]["message"].lower()
        status = c.get("/api/v1/intel/feeds").json()["feeds"][0]
        assert status["last_error"] and "csv" in status["last_error"].lower()


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_credential_in_a_feed_url_is_not_in_httpx_request_log(tmp_path: Path, feed_server: dict[str, Any]) -> None:
    secret = "s3cr3t-q-" + unique()
    feed_server["body"] = b"evil-log.example\n"
    feed = {"id": "logged", "url": f"{feed_server['url']}?access={secret}", "allow_private": True}
    feed["interval_s"] = 7 * 86_400
    cfg = Settings(data_dir=tmp_path, auth={"enabled": False})
    cfg = cfg.model_copy(update={"intel": IntelSettings(feeds=[feed])})
    httpx_log = logging.getLogger("httpx")
    kept, level = Kept(), httpx_log.level
    httpx_log.addHandler(kept)
    httpx_log.setLevel(logging.INFO)  # what `agentwatch serve` logs (log_level INFO)
    try:
        with run_server(cfg) as s, s.client() as c:
            assert c.post("/api/v1/intel/feeds/logged/sync").status_code == 200
    finally:
        httpx_log.removeHandler(kept)
        httpx_log.setLevel(level)
    requests = [line for line in kept.lines if "list.csv" in line]
    assert requests, kept.lines  # the fetch was logged: the log was seen
    assert not any(secret in line for line in requests), requests


# -- the import command -------------------------------------------------------------------


def test_the_import_command_splits_a_list_too_large_for_one_request(srv: RunningServer, tmp_path: Path) -> None:
    tag = unique()
    # 12,000 URLs of about 420 characters: the first 10,000 alone are over the 4 MiB a request may carry
    lines = [f"https://big-{tag}.example/{i:05d}/{'a' * 380}" for i in range(12_000)]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(lines) + "\n")
    ran = run(["intel", "import", str(listing), "--source", f"big-{tag}", "--server", srv.url], tmp_path)
    assert ran.code == 0, (ran.stdout[-500:], ran.stderr[-500:])
    assert ran.stdout.strip().splitlines()[-1] == "12000 created, 0 updated, 0 refused"
    with srv.client() as c:
        assert c.get(IOCS, params={"source": f"big-{tag}", "limit": 1}).json()["total"] == 12_000


def test_the_import_command_says_why_a_batch_was_refused_whole(srv: RunningServer, tmp_path: Path) -> None:
    listing = tmp_path / "iocs.txt"
    listing.write_text(f"ok-{unique()}.example\n")
    ran = run(["intel", "import", str(listing), "--source", "feed:mine", "--server", srv.url], tmp_path)
    assert ran.stdout.strip().splitlines()[-1] == "0 created, 0 updated, 1 refused"
    assert "entry 1:" in ran.stderr and "feed:" in ran.stderr, ran.stderr
