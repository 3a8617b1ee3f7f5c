"""Defects hunted in the playbooks capability: webhook URLs in every spelling of an internal
address, redirects, queued automatic runs of a playbook deleted or changed meanwhile, and
concurrent executes of one playbook (runs kept, alerts linked to one case); on SQLite and
PostgreSQL where a server is involved. No DNS lookup leaves the machine: names used resolve
from /etc/hosts (``localhost``) and numbers are read by the resolver without asking anyone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.app import Agentwatch
from agentwatch.detect import queries
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.playbooks import store
from agentwatch.soc.playbooks.model import Invalid, parse_playbook
from agentwatch.soc.playbooks.settings import PlaybookSettings
from tests.playbooks.helpers import PLAYBOOKS, create, execute, make_alert, server, settings, unique
from tests.support.server import RunningServer, free_port, run_server, serve_asgi


def webhook(url: str) -> dict[str, Any]:
    return {"name": "hook", "steps": [{"action": "notify_webhook", "params": {"url": url}}]}


def refusal(url: str, allow_private: bool) -> str:
    with pytest.raises(Invalid) as refused:
        parse_playbook(webhook(url), PlaybookSettings(allow_private_urls=allow_private))
    assert refused.value.problems[0]["field"] == "steps[0].params.url"
    return refused.value.problems[0]["rule"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1]:8080/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
        ("http://[::ffff:7f00:1]/hook", "loopback"),  # the same, in hex
        ("http://2130706433/hook", "loopback"),  # decimal 127.0.0.1
        ("http://0x7f000001/hook", "loopback"),  # hex
        ("http://0177.0.0.1/hook", "loopback"),  # octal
        ("http://127.1/hook", "loopback"),  # short form
        ("http://localhost:9/hook", "loopback"),  # a name, resolved from /etc/hosts
        ("http://LocalHost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://[fd12::1]/hook", "private"),  # IPv6 unique local
        ("http://[::ffff:192.168.1.1]/hook", "private"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[2002:7f00:1::]/hook", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("http://0.0.0.0/hook", "not a unicast"),
        ("http://[::]/hook", "not a unicast"),
    ],
)
def test_internal_receivers_in_any_spelling_are_refused_when_saved(url: str, why: str) -> None:
    assert why in refusal(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "http://[::ffff:a9fe:a9fe]/",
        "http://2852039166/",  # decimal
        "http://0xa9fea9fe/",  # hex
        "http://0251.0376.0251.0376/",  # octal
        "http://[fd00:ec2::254]/",  # AWS over IPv6
    ],
)
def test_metadata_addresses_are_refused_even_when_private_receivers_are_allowed(url: str) -> None:
    assert "cloud metadata address" in refusal(url, allow_private=True)


@contextmanager
def redirecting() -> Iterator[tuple[str, list[str]]]:
    """A receiver on 127.0.0.2 answering 307 to a second one on 127.0.0.3 (an internal address),
    which records what reaches it."""
    reached: list[str] = []

    async def inner(request: Request) -> Response:
        reached.append(request.url.path)
        return Response(b"ok")

    port_in = free_port("127.0.0.3")
    port_out = free_port("127.0.0.2")

    async def outer(request: Request) -> Response:
        return Response(b"", 307, headers={"Location": f"http://127.0.0.3:{port_in}/internal"})

    with (
        serve_asgi(Starlette(routes=[Route("/{p:path}", inner, methods=["POST", "GET"])]), "127.0.0.3", port_in),
        serve_asgi(Starlette(routes=[Route("/{p:path}", outer, methods=["POST"])]), "127.0.0.2", port_out),
    ):
        yield f"http://127.0.0.2:{port_out}", reached


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with server(tmp_path_factory.mktemp("data"), module_database_url) as s:
        yield s


def test_a_redirect_is_not_followed_and_fails_the_step(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine)
    with redirecting() as (base, reached), srv.client() as c:
        pb = create(c, [{"action": "notify_webhook", "params": {"url": f"{base}/hook", "timeout_s": 5}}])
        run = execute(c, pb["id"], aid)
        assert run["status"] == "failed" and run["steps"][0]["error"].endswith("receiver answered 307")
        assert reached == []


def test_a_url_allowed_when_saved_is_refused_when_the_guard_tightens(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, [{"action": "notify_webhook", "params": {"url": "http://[::ffff:127.0.0.1]:9/hook"}}])
        srv.aw.settings.playbooks.allow_private_urls = False
        try:
            run = execute(c, pb["id"], aid)
        finally:
            srv.aw.settings.playbooks.allow_private_urls = True
        assert run["status"] == "failed" and "loopback" in run["steps"][0]["error"]


def test_concurrent_executes_of_one_playbook_each_store_a_run_and_link_every_alert(srv: RunningServer) -> None:
    """Eight executes of one playbook at once, each for another alert, adding it to one case:
    every run is stored, and the case ends holding every alert (none lost to a concurrent
    read-modify-write of the case's alert list)."""
    first = make_alert(srv.aw.engine)
    alerts = [make_alert(srv.aw.engine) for _ in range(8)]
    with srv.client() as c:
        case = c.post("/api/v1/cases", json={"title": f"shared-{unique()}", "alert_ids": [first]}).json()
        pb = create(c, [{"action": "add_alert_to_case", "params": {"case_id": case["id"]}}])
    answers: list[Any] = [None] * len(alerts)
    start = threading.Barrier(len(alerts))

    def run(i: int) -> None:
        with srv.client(timeout=60) as own:
            start.wait()
            answers[i] = own.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": alerts[i]})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(alerts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * len(alerts), [a.text for a in answers]
    assert all(a.json()["status"] == "succeeded" for a in answers), [a.json() for a in answers]
    with srv.client() as c:
        assert c.get(f"{PLAYBOOKS}/{pb['id']}/runs").json()["meta"]["total"] == len(alerts)
        linked = c.get(f"/api/v1/cases/{case['id']}").json()["alert_ids"]
    assert sorted(linked) == sorted([first, *alerts])


# -- queued automatic runs -----------------------------------------------------------------------


@pytest.fixture
def bare(database_url: str, tmp_path: Path) -> Iterator[Agentwatch]:
    """A real agentwatch, built but not started: what its trigger queues stays queued until the
    test runs the worker itself."""
    aw = Agentwatch(settings(tmp_path, database_url))
    yield aw
    aw.engine.dispose()


def _finding(tag: str) -> Finding:
    event = Event(body={}, event_id=f"{tag}-e", event_type="ai.request", ts=1000.0, received_at=1000.0)
    return Finding("atr", f"stale-{tag}", "Stale", 9, [event], alert_type="atr", dedup_key=f"stale-{tag}")


async def _queue_then_work(aw: Agentwatch, tag: str, change: Any) -> str:
    """Record one new alert (queued for the automatic playbooks), ``change`` the store, then let
    the worker drain the queue; the alert's id."""
    trig = aw.components["playbooks"]
    await trig.reload()
    (stored,) = await aw.alerts.record([_finding(tag)])
    assert trig.queue.qsize() == 1
    await asyncio.to_thread(change)
    worker = asyncio.create_task(trig._work())
    try:
        await asyncio.wait_for(trig.queue.join(), 20)
    finally:
        worker.cancel()
    return str(stored["id"])


def _automatic(aw: Agentwatch, assignee: str) -> str:
    doc = {
        "name": f"auto-{unique()}",
        "trigger": {"type": "alert", "min_severity": 5},
        "steps": [{"action": "assign_alert", "params": {"assignee": assignee}}],
    }
    return store.create(aw.engine, parse_playbook(doc, aw.settings.playbooks), "test", 100)


def _assignee(aw: Agentwatch, alert_id: str) -> Any:
    return queries.get_alert(aw.engine, alert_id)["assignee"]


@pytest.mark.parametrize("how", ["deleted", "disabled", "replaced"])
def test_a_queued_automatic_run_follows_the_playbook_as_it_is_when_it_starts(bare: Agentwatch, how: str) -> None:
    pid = _automatic(bare, "old-steps")

    def change() -> None:
        if how == "deleted":
            assert store.remove(bare.engine, pid)
            return
        doc = store.get(bare.engine, pid)
        assert doc is not None
        new = {"name": doc["name"], "trigger": doc["trigger"], "enabled": how != "disabled"}
        new["steps"] = [{"action": "assign_alert", "params": {"assignee": "new-steps"}}]
        assert store.replace(bare.engine, pid, parse_playbook(new, bare.settings.playbooks))

    aid = asyncio.run(_queue_then_work(bare, unique(), change))
    runs, total = store.list_runs(bare.engine, pid, 0, 10)
    if how == "replaced":
        assert _assignee(bare, aid) == "new-steps" and total == 1
    else:  # nothing done, and no run row left behind for a playbook that no longer runs
        assert _assignee(bare, aid) is None and total == 0, runs


def test_concurrent_creates_never_pass_max_playbooks(database_url: str, tmp_path: Path) -> None:
    cfg = settings(tmp_path, database_url)
    cfg.playbooks.max_playbooks = 3
    with run_server(cfg) as s:
        answers: list[Any] = [None] * 8
        start = threading.Barrier(len(answers))

        def post(i: int) -> None:
            body = {"name": f"race-{i}", "steps": [{"action": "assign_alert", "params": {"assignee": "x"}}]}
            with s.client(timeout=60) as own:
                start.wait()
                answers[i] = own.post(PLAYBOOKS, json=body)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(answers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 3 + [409] * 5, [a.text for a in answers]
        with s.client() as c:
            assert c.get(PLAYBOOKS).json()["meta"]["total"] == 3
