"""A detection whose manifest holds several Sigma rules, on both stores: its install records every
rule it made, it counts as installed only while all of them exist (a rule dropped by an edit of
the file makes it not installed, whichever rule it was), installing it again then brings every
rule back, and an update to a version holding fewer rules removes the others from the record."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentwatch.marketplace.signing import sign_item
from tests.marketplace.helpers import RULE, Market, detection, index, market

ITEMS = "/api/v1/marketplace/items"
SLUG = "two-rule-detection"
A = "7a1b2c3d-0000-4000-8000-0000000000c1"
B = "7a1b2c3d-0000-4000-8000-0000000000c2"
KEY = Ed25519PrivateKey.generate()


def _rule(rule_id: str, version: str) -> str:
    return RULE.format(version=version, rule_id=rule_id, level="low").replace("Remote test rule", f"Rule {rule_id}")


def _index(version: str, *rule_ids: str) -> bytes:
    item = detection(SLUG, A, version)
    item["manifest"] = "---\n".join(_rule(r, version) for r in rule_ids)
    return index(sign_item(item, KEY))


@pytest.fixture(scope="module")
def two(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    with market(module_database_url, tmp_path_factory.mktemp("server"), _index("1.0.0", A, B), KEY) as m:
        yield m


def _listed(c: httpx.Client) -> dict:
    return {i["slug"]: i for i in c.get(ITEMS).json()["items"]}[SLUG]


def _exists(c: httpx.Client, rule_id: str) -> bool:
    return c.get(f"/api/v1/rules/{rule_id}").status_code == 200


@pytest.mark.parametrize("kept", [A, B], ids=["first-kept", "second-kept"])
def test_every_rule_is_recorded_and_a_dropped_one_means_not_installed(two: Market, kept: str) -> None:
    with two.server.client() as c:
        r = c.post(f"{ITEMS}/{SLUG}:install")
        assert r.status_code == 201, r.text
        assert r.json()["resource_ids"] == [A, B] and r.json()["install"]["resource_ids"] == [A, B]
        assert _exists(c, A) and _exists(c, B)
        assert _listed(c)["installed"] is True
        # someone edits the uploaded file through the rules API, keeping one rule of the two
        put = c.put(f"/api/v1/rules/{kept}", json={"yaml": _rule(kept, "1.0.0")})
        assert put.status_code == 200, put.text
        gone = B if kept == A else A
        assert not _exists(c, gone)
        listed = _listed(c)
        assert listed["installed"] is False and listed["installed_version"] is None
        assert SLUG in {i["slug"] for i in c.get(ITEMS, params={"installed": "false"}).json()["items"]}
        # installing it again restores both, through the rule still there
        again = c.post(f"{ITEMS}/{SLUG}:install")
        assert again.status_code == 201, again.text
        assert again.json()["resource_ids"] == [A, B]
        assert _exists(c, A) and _exists(c, B) and _listed(c)["installed"] is True
        # make the next case start from nothing: drop B, then delete A alone
        assert c.put(f"/api/v1/rules/{A}", json={"yaml": _rule(A, "1.0.0")}).status_code == 200
        assert c.delete(f"/api/v1/rules/{A}").status_code == 204
        assert not _exists(c, A) and not _exists(c, B)


def test_an_update_to_fewer_rules_records_only_those(two: Market) -> None:
    with two.server.client() as c:
        assert c.post(f"{ITEMS}/{SLUG}:install").status_code == 201
        two.serve(_index("1.1.0", B))
        up = c.post(f"{ITEMS}/{SLUG}:install")
        assert up.status_code == 200, up.text
        assert up.json()["resource_ids"] == [B] and up.json()["resource_id"] == B
        assert not _exists(c, A) and "marketplace-test-tool-1.1.0" in c.get(f"/api/v1/rules/{B}").json()["yaml"]
        assert _listed(c)["installed"] is True and _listed(c)["installed_version"] == "1.1.0"
