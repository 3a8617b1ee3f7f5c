"""Uninstalling a marketplace item (``POST /api/v1/marketplace/items/{slug}:uninstall``) on a real
server reading a fake remote index, on both stores: every rule a detection made goes (through the
rules' own delete, so the engine and the rule store agree), a playbook goes and the automatic
trigger forgets it, and the install record goes; a rule or playbook already deleted by hand is no
error; never installed is 404 naming the slug; an install or uninstall of the slug under way is
409; a rule someone put in the detection's file since is never deleted (the edited file is kept and
listed in ``kept``, the record goes);
and installs racing uninstalls of one slug leave it either wholly installed or wholly gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.marketplace import store
from agentwatch.marketplace.signing import sign_item
from tests.marketplace.helpers import RULE, Market, detection, index, market

ITEMS = "/api/v1/marketplace/items"
RULES = "/api/v1/rules"
DETECTION = "three-rule-detection"
PLAYBOOK = "uninstalled-playbook"
A = "7a1b2c3d-0000-4000-8000-0000000000d1"
B = "7a1b2c3d-0000-4000-8000-0000000000d2"
C = "7a1b2c3d-0000-4000-8000-0000000000d3"
MINE = "7a1b2c3d-0000-4000-8000-0000000000df"
KEY = Ed25519PrivateKey.generate()


def _rule(rule_id: str) -> str:
    return RULE.format(version="1.0.0", rule_id=rule_id, level="low").replace("Remote test rule", f"Rule {rule_id}")


def _playbook() -> dict[str, Any]:
    return {
        "slug": PLAYBOOK,
        "kind": "playbook",
        "name": "Playbook to uninstall",
        "version": "1.0.0",
        "summary": "a playbook installed then uninstalled",
        "author": "test publisher",
        "tags": [],
        "manifest": {
            "name": "Playbook to uninstall",
            "description": "sends every alert to a webhook",
            "trigger": {"type": "alert", "min_severity": 1},
            "steps": [{"action": "notify_webhook", "params": {"url": "https://hooks.example.com/collect"}}],
        },
    }


def _index() -> bytes:
    item = detection(DETECTION, A)
    item["manifest"] = "---\n".join(_rule(r) for r in (A, B, C))
    return index(sign_item(item, KEY), sign_item(_playbook(), KEY))


@pytest.fixture(scope="module")
def m(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    with market(module_database_url, tmp_path_factory.mktemp("server"), _index(), KEY) as made:
        yield made


def _exists(c: httpx.Client, rule_id: str) -> bool:
    return c.get(f"{RULES}/{rule_id}").status_code == 200


def _listed(c: httpx.Client, slug: str) -> dict[str, Any]:
    return {i["slug"]: i for i in c.get(ITEMS).json()["items"]}[slug]


def test_uninstalling_a_detection_removes_every_rule_it_made_and_its_record(m: Market) -> None:
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 201
        assert all(_exists(c, r) for r in (A, B, C))
        r = c.post(f"{ITEMS}/{DETECTION}:uninstall")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["slug"], body["kind"], body["version"]) == (DETECTION, "detection", "1.0.0")
        assert body["removed"] == [A, B, C] and body["already_gone"] == []
        assert not any(_exists(c, r) for r in (A, B, C))
        infos = m.server.aw.components["detection"].engine.infos  # the engine let them go too
        assert not any(r in infos for r in (A, B, C))
        assert store.get(m.server.aw.engine, DETECTION) is None
        listed = _listed(c, DETECTION)
        assert listed["installed"] is False and listed["installed_version"] is None
        again = c.post(f"{ITEMS}/{DETECTION}:uninstall")
        assert again.status_code == 404, again.text
        assert again.json()["error"]["message"] == f"slug: {DETECTION} is not installed"
        assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 201  # installs afresh
        assert c.post(f"{ITEMS}/{DETECTION}:uninstall").status_code == 200


def test_rules_already_deleted_by_hand_are_no_error_and_the_record_goes(m: Market) -> None:
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 201
        # someone cut the file down to A, then deleted A too
        assert c.put(f"{RULES}/{A}", json={"yaml": _rule(A)}).status_code == 200
        assert c.delete(f"{RULES}/{A}").status_code == 204
        r = c.post(f"{ITEMS}/{DETECTION}:uninstall")
        assert r.status_code == 200, r.text
        assert r.json()["removed"] == [] and r.json()["already_gone"] == [A, B, C]
        assert store.get(m.server.aw.engine, DETECTION) is None


def test_a_rule_of_someone_else_in_the_file_is_never_deleted(m: Market) -> None:
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 201
        # someone replaced the file with A and a rule of their own: the file is theirs now
        assert c.put(f"{RULES}/{A}", json={"yaml": _rule(A) + "---\n" + _rule(MINE)}).status_code == 200
        r = c.post(f"{ITEMS}/{DETECTION}:uninstall")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["removed"] == [] and body["already_gone"] == [B, C]
        assert [(k["rule_id"], k["reason"]) for k in body["kept"]] == [(A, "edited")]
        assert _exists(c, A) and _exists(c, MINE)
        assert store.get(m.server.aw.engine, DETECTION) is None  # the rest of the uninstall went on
        assert c.put(f"{RULES}/{A}", json={"yaml": _rule(MINE)}).status_code == 422  # must define A
        assert c.delete(f"{RULES}/{A}").status_code == 409  # one file with MINE: replace it without A
        assert c.put(f"{RULES}/{MINE}", json={"yaml": _rule(MINE)}).status_code == 200
        assert c.delete(f"{RULES}/{MINE}").status_code == 204 and not _exists(c, A)


def test_uninstalling_a_playbook_removes_it_and_the_trigger_forgets_it(m: Market) -> None:
    srv = m.server
    with srv.client() as c:
        made = c.post(f"{ITEMS}/{PLAYBOOK}:install")
        assert made.status_code == 201, made.text
        pid = made.json()["resource_id"]
        book = c.get(f"/api/v1/playbooks/{pid}").json()
        doc = {k: book[k] for k in ("name", "description", "trigger", "steps")}
        assert c.put(f"/api/v1/playbooks/{pid}", json={**doc, "enabled": True}).status_code == 200
        assert srv.aw.components["playbooks"].health()["automatic_playbooks"] == 1
        r = c.post(f"{ITEMS}/{PLAYBOOK}:uninstall", json={})
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "playbook" and r.json()["removed"] == [pid] and r.json()["already_gone"] == []
        assert c.get(f"/api/v1/playbooks/{pid}").status_code == 404
        assert srv.aw.components["playbooks"].health()["automatic_playbooks"] == 0
        assert store.get(srv.aw.engine, PLAYBOOK) is None
        # deleted by hand first: the record still goes
        again = c.post(f"{ITEMS}/{PLAYBOOK}:install").json()["resource_id"]
        assert c.delete(f"/api/v1/playbooks/{again}").status_code == 204
        r = c.post(f"{ITEMS}/{PLAYBOOK}:uninstall")
        assert r.status_code == 200 and r.json()["already_gone"] == [again], r.text
        assert store.get(srv.aw.engine, PLAYBOOK) is None


def test_an_install_under_way_is_409_and_bad_requests_name_the_field(m: Market) -> None:
    engine = m.server.aw.engine
    with m.server.client() as c:
        token = store.claim(engine, DETECTION, "1.0.0", "detection", "user:busy", None)
        r = c.post(f"{ITEMS}/{DETECTION}:uninstall")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["message"] == (
            f"slug: {DETECTION} is being installed or uninstalled by another request; list the items to see its install"
        )
        assert store.get(engine, DETECTION)["resource_id"] == token  # the claim is untouched
        store.release(engine, DETECTION, token, None)
        r = c.post(f"{ITEMS}/Not_A_Slug:uninstall")
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("slug: must be"), r.text
        r = c.post(f"{ITEMS}/never-installed:uninstall")
        assert r.status_code == 404 and r.json()["error"]["message"] == "slug: never-installed is not installed"
        assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 201
        r = c.post(f"{ITEMS}/{DETECTION}:uninstall", json={"keep_rules": True})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("keep_rules: Extra inputs"), r.text
        assert all(_exists(c, r) for r in (A, B, C))
        assert c.post(f"{ITEMS}/{DETECTION}:uninstall").status_code == 200


async def _race(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        calls = [c.post(f"{ITEMS}/{DETECTION}:{verb}") for _ in range(n) for verb in ("uninstall", "install")]
        return list(await asyncio.gather(*calls))


def test_installs_racing_uninstalls_leave_the_slug_whole_or_gone(m: Market) -> None:
    engine = m.server.aw.engine
    with m.server.client() as c:
        for _ in range(3):
            if store.get(engine, DETECTION) is None:
                assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 201
            answers = asyncio.run(_race(m.server.url, 4))
            assert {r.status_code for r in answers} <= {200, 201, 404, 409}, [r.text for r in answers]
            assert any(r.status_code == 200 and "removed" in r.json() for r in answers)
            row = store.get(engine, DETECTION)
            there = [_exists(c, r) for r in (A, B, C)]
            if row is None:
                assert there == [False, False, False]
                assert _listed(c, DETECTION)["installed"] is False
            else:
                assert not store.pending(row) and row["resource_ids"] == [A, B, C]
                assert there == [True, True, True] and _listed(c, DETECTION)["installed"] is True
        if store.get(engine, DETECTION) is not None:
            assert c.post(f"{ITEMS}/{DETECTION}:uninstall").status_code == 200
