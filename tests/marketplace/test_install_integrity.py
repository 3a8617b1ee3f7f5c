"""Installs stay true to what exists, on a real server, on both stores: concurrent installs of one
slug leave exactly one rule or playbook (the losers get a 409 saying another request installs
it), and a rule or playbook deleted through its own API no longer counts as installed: the
listing says so and it can be installed again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import update

from agentwatch.config import Settings
from agentwatch.marketplace import store
from agentwatch.marketplace.schema import marketplace_installs
from tests.support.server import RunningServer, run_server

ITEMS = "/api/v1/marketplace/items"
DETECTION = "tool-result-orders-data-upload"
PLAYBOOK = "contain-agent-exfiltration"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("server"),
        database_url=module_database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as s:
        yield s


async def _install_at_once(url: str, slug: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        return list(await asyncio.gather(*(c.post(f"{ITEMS}/{slug}:install") for _ in range(n))))


def _playbooks_named(c: httpx.Client, name: str) -> list[dict]:
    books = c.get("/api/v1/playbooks", params={"limit": 1000}).json()["playbooks"]
    return [b for b in books if b["name"] == name]


def _listed(c: httpx.Client, slug: str) -> dict:
    return {i["slug"]: i for i in c.get(ITEMS).json()["items"]}[slug]


@pytest.mark.parametrize("slug", [DETECTION, PLAYBOOK])
def test_concurrent_installs_of_one_slug_leave_one_resource_and_the_losers_get_409(
    srv: RunningServer, slug: str
) -> None:
    answers = asyncio.run(_install_at_once(srv.url, slug, 6))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in answers]
    (won,) = [r.json() for r in answers if r.status_code == 201]
    for lost in (r for r in answers if r.status_code == 409):
        message = lost.json()["error"]["message"]
        # one that came while the winner worked, or after it was done
        raced = message == f"slug: {slug} is being installed by another request; list the items to see its install"
        assert raced or message == f"version: {slug} 1.0.0 is installed already", message
    with srv.client() as c:
        if slug == PLAYBOOK:
            (book,) = _playbooks_named(c, "Contain suspected agent data exfiltration")
            assert book["id"] == won["resource_id"]
        else:
            assert c.get(f"/api/v1/rules/{won['resource_id']}").status_code == 200
        assert _listed(c, slug)["install"]["resource_id"] == won["resource_id"]


def test_a_deleted_playbook_is_no_longer_installed_and_installs_again(srv: RunningServer) -> None:
    slug = "triage-indirect-prompt-injection"
    with srv.client() as c:
        first = c.post(f"{ITEMS}/{slug}:install")
        assert first.status_code == 201, first.text
        assert c.delete(f"/api/v1/playbooks/{first.json()['resource_id']}").status_code == 204
        listed = _listed(c, slug)
        assert listed["installed"] is False and listed["installed_version"] is None and "install" not in listed
        assert c.get(f"{ITEMS}/{slug}").json()["installed"] is False
        assert slug in {i["slug"] for i in c.get(ITEMS, params={"installed": "false"}).json()["items"]}
        assert slug not in {i["slug"] for i in c.get(ITEMS, params={"installed": "true"}).json()["items"]}
        again = c.post(f"{ITEMS}/{slug}:install")
        assert again.status_code == 201, again.text
        assert again.json()["resource_id"] != first.json()["resource_id"]
        assert c.get(f"/api/v1/playbooks/{again.json()['resource_id']}").status_code == 200
        assert _listed(c, slug)["installed"] is True
        assert c.post(f"{ITEMS}/{slug}:install").status_code == 409


def test_a_deleted_rule_is_no_longer_installed_and_installs_again(srv: RunningServer) -> None:
    slug = "agent-tool-touches-credential-files"
    with srv.client() as c:
        first = c.post(f"{ITEMS}/{slug}:install")
        assert first.status_code == 201, first.text
        rule_id = first.json()["resource_id"]
        assert c.delete(f"/api/v1/rules/{rule_id}").status_code == 204
        listed = _listed(c, slug)
        assert listed["installed"] is False and listed["installed_version"] is None
        assert c.get(f"{ITEMS}/{slug}").json()["installed"] is False
        again = c.post(f"{ITEMS}/{slug}:install")
        assert again.status_code == 201, again.text
        assert c.get(f"/api/v1/rules/{rule_id}").status_code == 200
        assert _listed(c, slug)["installed"] is True


def test_a_failed_install_gives_its_claim_back(srv: RunningServer) -> None:
    slug = "agent-tool-pipes-download-to-shell"
    rule_id = "6f1d2c9a-4b7e-4d51-9a0c-1e2f3a4b5c61"
    own = RULE_OF_MY_OWN.format(rule_id=rule_id)
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": own}).status_code == 201
        clash = c.post(f"{ITEMS}/{slug}:install")
        assert clash.status_code == 409 and rule_id in clash.json()["error"]["message"]
        assert store.get(srv.aw.engine, slug) is None  # no claim left behind
        assert c.delete(f"/api/v1/rules/{rule_id}").status_code == 204
        assert c.post(f"{ITEMS}/{slug}:install").status_code == 201


def test_a_claim_under_way_refuses_a_second_install_and_an_abandoned_one_is_taken_over(srv: RunningServer) -> None:
    slug = "llm-output-markdown-image-beacon"
    engine = srv.aw.engine
    store.claim(engine, slug, "1.0.0", "detection", "user:crashed", None)
    with srv.client() as c:
        r = c.post(f"{ITEMS}/{slug}:install")
        assert r.status_code == 409 and "is being installed by another request" in r.json()["error"]["message"]
        assert _listed(c, slug)["installed"] is False
        with engine.begin() as conn:  # the claiming node stopped long ago
            conn.execute(
                update(marketplace_installs)
                .where(marketplace_installs.c.slug == slug)
                .values(updated_at=time.time() - store.CLAIM_TTL_S - 1)
            )
        took = c.post(f"{ITEMS}/{slug}:install")
        assert took.status_code == 201, took.text
        assert _listed(c, slug)["install"]["resource_id"] == took.json()["resource_id"]


RULE_OF_MY_OWN = """title: My own rule
id: {rule_id}
status: experimental
logsource:
  product: agentwatch
  category: tool_call
detection:
  sel:
    tool_name: my-own-tool
  condition: sel
level: low
"""


def test_install_takes_no_fields_and_names_an_unknown_one(srv: RunningServer) -> None:
    slug = "agent-host-resolves-drop-service"
    with srv.client() as c:
        r = c.post(f"{ITEMS}/{slug}:install", json={"force": True})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("force: Extra inputs"), r.text
        r = c.post(f"{ITEMS}/{slug}:install", content=b"[1]", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("body:"), r.text
        r = c.post(f"{ITEMS}/{slug}:install", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert _listed(c, slug)["installed"] is False
        assert c.post(f"{ITEMS}/{slug}:install", json={}).status_code == 201
