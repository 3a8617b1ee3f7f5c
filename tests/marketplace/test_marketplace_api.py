"""The marketplace routes on a real server, on both stores: listing the bundled and a remote
index (fetched from a plain-HTTP loopback server a test setting allows), item details, installing
each kind, refusing changed or foreign items, reinstalling (409) and updating to a newer version,
and bad input answered 4xx naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete

from agentwatch.marketplace.schema import marketplace_index_state
from tests.marketplace.helpers import Market, remote_items
from tests.marketplace.helpers import market as market_of
from tests.support.server import RunningServer

ITEMS = "/api/v1/marketplace/items"
BUNDLED = 7


@dataclass
class Api:
    server: RunningServer
    client: httpx.Client
    remote: Market
    trusted: Ed25519PrivateKey
    other: Ed25519PrivateKey


@pytest.fixture(scope="module")
def market(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    trusted, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    data_dir = tmp_path_factory.mktemp("server")
    with market_of(module_database_url, data_dir, remote_items(trusted, other), trusted) as m, m.server.client() as c:
        yield Api(m.server, c, m, trusted, other)


def _items(m: Api, **params: str) -> dict[str, dict]:
    r = m.client.get(ITEMS, params=params)
    assert r.status_code == 200, r.text
    return {i["slug"]: i for i in r.json()["items"]}


def test_list_holds_the_bundled_items_verified_and_the_remote_ones_checked(market: Api) -> None:
    r = market.client.get(ITEMS)
    assert r.status_code == 200, r.text
    body = r.json()
    items = {i["slug"]: i for i in body["items"]}
    bundled = [i for i in items.values() if i["source"] == "bundled"]
    assert len(bundled) == BUNDLED and all(i["verified"] and i["reason"] is None for i in bundled)
    assert items["remote-good-rule"]["verified"] is True and items["remote-good-rule"]["source"] == "remote"
    assert items["remote-tampered-rule"]["verified"] is False
    assert items["remote-tampered-rule"]["reason"].startswith("sha256: does not match the manifest")
    assert items["remote-bad-signature"]["reason"].startswith("signature: does not verify")
    assert "is not a trusted publisher key" in items["remote-unknown-key"]["reason"]
    assert body["meta"]["remote"]["error"] is None
    assert body["meta"]["remote"]["items"] == 5 and body["meta"]["remote"]["dropped"] == 1
    assert "manifest" not in items["remote-good-rule"]  # the list is a summary; the detail has it


def test_the_remote_index_is_fetched_at_most_every_refresh_interval(market: Api) -> None:
    before = market.remote.fake.hits
    for _ in range(3):
        _items(market)
    assert market.remote.fake.hits == before


def test_filters_combine_and_unknown_or_bad_parameters_are_refused(market: Api) -> None:
    assert set(_items(market, kind="playbook")) == {"contain-agent-exfiltration", "triage-indirect-prompt-injection"}
    assert set(_items(market, kind="plugin")) == {"remote-plugin"}
    assert set(_items(market, verified="false")) == {
        "remote-tampered-rule",
        "remote-bad-signature",
        "remote-unknown-key",
    }
    assert set(_items(market, tag="atlas.aml.t0055")) == {"agent-tool-touches-credential-files"}
    assert set(_items(market, q="MARKDOWN")) == {"llm-output-markdown-image-beacon"}
    c = market.client
    bad = c.get(ITEMS, params={"sort": "name"})
    assert bad.status_code == 400 and "sort: unknown query parameter" in bad.json()["error"]["message"]
    assert c.get(ITEMS, params={"kind": "model"}).status_code in (400, 422)
    assert c.get(ITEMS, params={"q": "x" * 129}).status_code in (400, 422)
    assert c.get(ITEMS, params={"tag": "Bad Tag"}).status_code in (400, 422)


def test_detail_carries_manifest_digest_and_signature(market: Api) -> None:
    r = market.client.get(f"{ITEMS}/agent-tool-touches-credential-files")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["kind"] == "detection" and d["verified"] is True
    assert d["manifest"].startswith("title: Agent tool call names a credential file")
    assert len(d["sha256"]) == 64 and d["signature"]["alg"] == "ed25519"
    assert d["installed"] is False and d["installed_version"] is None
    book = market.client.get(f"{ITEMS}/contain-agent-exfiltration").json()
    assert book["manifest"]["steps"][0]["action"] == "set_alert_status"


def test_bad_and_unknown_slugs(market: Api) -> None:
    c = market.client
    r = c.get(f"{ITEMS}/Bad_Slug")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("slug:")
    assert c.get(f"{ITEMS}/{'a' * 65}").status_code == 400
    assert c.get(f"{ITEMS}/no-such-item").status_code == 404
    assert c.post(f"{ITEMS}/no-such-item:install").status_code == 404
    assert c.post(f"{ITEMS}/-dash:install").status_code == 400
    assert c.get(f"{ITEMS}/agent-tool-touches-credential-files", params={"x": "1"}).status_code == 400
    assert c.post(f"{ITEMS}/remote-plugin:install", params={"force": "1"}).status_code == 400


def test_installing_a_detection_adds_the_rule_and_a_second_install_is_409(market: Api) -> None:
    c = market.client
    slug = "agent-tool-pipes-download-to-shell"
    r = c.post(f"{ITEMS}/{slug}:install")
    assert r.status_code == 201, r.text
    rule_id = r.json()["resource_id"]
    assert rule_id == "6f1d2c9a-4b7e-4d51-9a0c-1e2f3a4b5c61"
    rule = c.get(f"/api/v1/rules/{rule_id}")
    assert rule.status_code == 200 and rule.json()["origin"] == "user" and rule.json()["enabled"] is True
    listed = _items(market)[slug]
    assert listed["installed"] is True and listed["installed_version"] == "1.0.0"
    assert listed["install"]["resource_id"] == rule_id
    again = c.post(f"{ITEMS}/{slug}:install")
    assert again.status_code == 409 and "is installed already" in again.json()["error"]["message"]


def test_installing_a_playbook_creates_it_in_the_playbooks_store(market: Api) -> None:
    c = market.client
    r = c.post(f"{ITEMS}/triage-indirect-prompt-injection:install")
    assert r.status_code == 201, r.text
    book = c.get(f"/api/v1/playbooks/{r.json()['resource_id']}")
    assert book.status_code == 200, book.text
    assert book.json()["name"] == "Triage indirect prompt injection" and book.json()["enabled"] is False
    assert c.get(f"{ITEMS}/triage-indirect-prompt-injection").json()["installed_version"] == "1.0.0"
    assert c.post(f"{ITEMS}/triage-indirect-prompt-injection:install").status_code == 409


def test_a_plugin_is_never_installed_through_the_api(market: Api) -> None:
    r = market.client.post(f"{ITEMS}/remote-plugin:install")
    assert r.status_code == 409
    msg = r.json()["error"]["message"]
    assert "never installed through the API" in msg and "pip" in msg and "agentwatch-test-plugin==0.1.0" in msg
    assert _items(market)["remote-plugin"]["installed"] is False


@pytest.mark.parametrize(
    ("slug", "n"), [("remote-tampered-rule", 2), ("remote-bad-signature", 3), ("remote-unknown-key", 4)]
)
def test_an_unverified_item_cannot_be_installed(market: Api, slug: str, n: int) -> None:
    r = market.client.post(f"{ITEMS}/{slug}:install")
    assert r.status_code == 409 and "does not verify" in r.json()["error"]["message"]
    assert market.client.get(f"/api/v1/rules/7a1b2c3d-0000-4000-8000-00000000000{n}").status_code == 404
    assert _items(market)[slug]["installed"] is False


def test_a_remote_item_installs_and_a_newer_version_updates_it(market: Api) -> None:
    c = market.client
    r = c.post(f"{ITEMS}/remote-good-rule:install")
    assert r.status_code == 201, r.text
    rule_id = r.json()["resource_id"]
    assert "marketplace-test-tool-1.0.0" in c.get(f"/api/v1/rules/{rule_id}").json()["yaml"]
    # the publisher ships 1.1.0; the refresh interval has passed
    market.remote.serve(remote_items(market.trusted, market.other, good_version="1.1.0"))
    assert _items(market)["remote-good-rule"]["version"] == "1.1.0"
    up = c.post(f"{ITEMS}/remote-good-rule:install")
    assert up.status_code == 200, up.text
    assert up.json()["updated_from"] == "1.0.0" and up.json()["installed_version"] == "1.1.0"
    assert up.json()["resource_id"] == rule_id
    assert "marketplace-test-tool-1.1.0" in c.get(f"/api/v1/rules/{rule_id}").json()["yaml"]
    assert c.post(f"{ITEMS}/remote-good-rule:install").status_code == 409
    # an older version than the installed one is refused: as a replay while the server runs...
    market.remote.serve(remote_items(market.trusted, market.other, good_version="1.0.5"))
    replayed = c.post(f"{ITEMS}/remote-good-rule:install")
    assert replayed.status_code == 409 and "an older index replayed?" in replayed.json()["error"]["message"]
    # ...and, when the versions seen are lost (their row deleted), as older than the installed one
    with market.server.aw.engine.begin() as conn:
        conn.execute(delete(marketplace_index_state))
    market.remote.serve(market.remote.fake.body)
    old = c.post(f"{ITEMS}/remote-good-rule:install")
    assert old.status_code == 409 and "newer than 1.0.5" in old.json()["error"]["message"]


def test_the_bundled_index_is_served_read_only(market: Api) -> None:
    c = market.client
    r = c.get("/marketplace/index.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert len(r.json()["items"]) == BUNDLED and r.json()["format"] == "agentwatch-marketplace/1"
    assert c.post("/marketplace/index.json").status_code == 405
    assert c.get("/marketplace/index.json", params={"v": "2"}).status_code == 400
