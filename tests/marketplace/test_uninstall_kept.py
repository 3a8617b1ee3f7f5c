"""An uninstall deletes only the rules that are still those the install made, on a real server
reading a fake remote index, on both stores: a rule a person stored again under an installed id
(even with the same text) or edited since is kept and listed in ``kept`` with the reason, while the
rest of the uninstall completes; a rule only switched off is still the pack's; the check is made
again in the deleting transaction; and an install recorded before marks were is judged against the
manifest of the installed version as the index verifies it now (kept when it does not match, or
when the index no longer lists that version)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from agentwatch.marketplace import marks, store, uninstall
from agentwatch.marketplace.schema import marketplace_installs
from agentwatch.marketplace.signing import sign_item
from tests.marketplace.helpers import RULE, Market, detection, index, market

ITEMS = "/api/v1/marketplace/items"
RULES = "/api/v1/rules"
ONE = "one-rule-to-keep"
TWO = "two-rules-to-keep"
GONE = "version-no-longer-listed"
R = "7a1b2c3d-0000-4000-8000-0000000000e1"
S = "7a1b2c3d-0000-4000-8000-0000000000e2"
T = "7a1b2c3d-0000-4000-8000-0000000000e3"
U = "7a1b2c3d-0000-4000-8000-0000000000e4"
KEY = Ed25519PrivateKey.generate()


def _rule(rule_id: str, level: str = "low") -> str:
    return RULE.format(version="1.0.0", rule_id=rule_id, level=level).replace("Remote test rule", f"Rule {rule_id}")


def _two() -> dict[str, Any]:
    item = detection(TWO, S)
    item["manifest"] = _rule(S) + "---\n" + _rule(T)
    return item


def _index(gone_version: str = "1.0.0") -> bytes:
    one = detection(ONE, R)
    gone = detection(GONE, U, gone_version)
    return index(sign_item(one, KEY), sign_item(_two(), KEY), sign_item(gone, KEY))


@pytest.fixture(scope="module")
def m(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    with market(module_database_url, tmp_path_factory.mktemp("server"), _index(), KEY) as made:
        yield made


def _yaml(c: httpx.Client, rule_id: str) -> str | None:
    r = c.get(f"{RULES}/{rule_id}")
    return r.json()["yaml"] if r.status_code == 200 else None


def _kept(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k["rule_id"], k["reason"]) for k in body["kept"]]


def _forget_marks(m: Market, slug: str) -> None:
    """Make the install record look like one written before marks were recorded."""
    with m.server.aw.engine.begin() as conn:
        conn.execute(update(marketplace_installs).where(marketplace_installs.c.slug == slug).values(rule_marks=None))


def test_a_normal_uninstall_records_marks_and_deletes_every_rule_it_made(m: Market) -> None:
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{TWO}:install").status_code == 201
        row = store.get(m.server.aw.engine, TWO)
        sha = hashlib.sha256(_two()["manifest"].encode()).hexdigest()
        assert set(row["_marks"]) == {S, T} and {v["sha256"] for v in row["_marks"].values()} == {sha}
        assert all(isinstance(v["created_at"], float) for v in row["_marks"].values())
        assert "_marks" not in c.get(f"{ITEMS}/{TWO}").json()["install"]  # not part of the answer
        # switching a rule off is no edit: it is still the pack's
        assert c.post(f"{RULES}/{T}/disable").status_code == 200
        r = c.post(f"{ITEMS}/{TWO}:uninstall")
        assert r.status_code == 200, r.text
        assert r.json()["removed"] == [S, T] and r.json()["already_gone"] == [] and r.json()["kept"] == []
        assert _yaml(c, S) is None and _yaml(c, T) is None
        assert store.get(m.server.aw.engine, TWO) is None


def test_a_rule_stored_again_under_an_installed_id_is_kept(m: Market) -> None:
    mine = _rule(R, level="high").replace(f"Rule {R}", "My own rule")
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{ONE}:install").status_code == 201
        assert c.delete(f"{RULES}/{R}").status_code == 204
        assert c.post(RULES, json={"yaml": mine}).status_code == 201
        r = c.post(f"{ITEMS}/{ONE}:uninstall")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["removed"] == [] and body["already_gone"] == []
        assert _kept(body) == [(R, "replaced")]
        assert body["kept"][0]["message"].startswith(f"rule_id: {R} was kept: it was deleted and a rule was stored")
        assert _yaml(c, R) == mine  # the person's rule survives
        assert store.get(m.server.aw.engine, ONE) is None
        # even the very text of the pack, stored again by a person, is theirs
        assert c.delete(f"{RULES}/{R}").status_code == 204
        assert c.post(f"{ITEMS}/{ONE}:install").status_code == 201
        text = _yaml(c, R)
        assert c.delete(f"{RULES}/{R}").status_code == 204
        assert c.post(RULES, json={"yaml": text}).status_code == 201
        r = c.post(f"{ITEMS}/{ONE}:uninstall")
        assert r.status_code == 200 and _kept(r.json()) == [(R, "replaced")], r.text
        assert c.delete(f"{RULES}/{R}").status_code == 204


def test_an_edited_rule_is_kept_with_its_whole_file(m: Market) -> None:
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{TWO}:install").status_code == 201
        edited = _rule(S, level="high") + "---\n" + _rule(T)
        assert c.put(f"{RULES}/{S}", json={"yaml": edited}).status_code == 200
        r = c.post(f"{ITEMS}/{TWO}:uninstall")
        assert r.status_code == 200, r.text
        assert r.json()["removed"] == [] and sorted(_kept(r.json())) == [(S, "edited"), (T, "edited")]
        assert _yaml(c, S) == edited and _yaml(c, T) == edited
        assert store.get(m.server.aw.engine, TWO) is None
        assert c.put(f"{RULES}/{S}", json={"yaml": _rule(S)}).status_code == 200
        assert c.delete(f"{RULES}/{S}").status_code == 204


def test_the_check_is_made_again_in_the_deleting_transaction(m: Market) -> None:
    engine = m.server.aw.components["detection"].engine
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{ONE}:install").status_code == 201
        recorded = store.get(m.server.aw.engine, ONE)["_marks"]
        # as if the rule had been stored again after the uninstall looked at it
        stale = {R: {**recorded[R], "created_at": recorded[R]["created_at"] - 10}}
        with pytest.raises(marks.NotThePacks) as raised:
            uninstall._remove_rule(engine, R, [R], stale)
        assert raised.value.kept == {R: "replaced"}
        assert _yaml(c, R) is not None and R in engine.infos  # the delete was rolled back
        r = c.post(f"{ITEMS}/{ONE}:uninstall")
        assert r.status_code == 200 and r.json()["removed"] == [R], r.text


def test_an_old_record_deletes_a_rule_only_when_it_is_the_listed_manifest(m: Market) -> None:
    with m.server.client() as c:
        # unchanged since the install: the listed manifest, so the pack's
        assert c.post(f"{ITEMS}/{ONE}:install").status_code == 201
        _forget_marks(m, ONE)
        assert store.get(m.server.aw.engine, ONE)["_marks"] is None
        r = c.post(f"{ITEMS}/{ONE}:uninstall")
        assert r.status_code == 200 and r.json()["removed"] == [R] and r.json()["kept"] == [], r.text
        # another rule under the id: kept
        assert c.post(f"{ITEMS}/{ONE}:install").status_code == 201
        _forget_marks(m, ONE)
        assert c.delete(f"{RULES}/{R}").status_code == 204
        mine = _rule(R, level="high")
        assert c.post(RULES, json={"yaml": mine}).status_code == 201
        r = c.post(f"{ITEMS}/{ONE}:uninstall")
        assert r.status_code == 200 and _kept(r.json()) == [(R, "unrecognised")], r.text
        assert _yaml(c, R) == mine and store.get(m.server.aw.engine, ONE) is None
        assert c.delete(f"{RULES}/{R}").status_code == 204


def test_an_old_record_whose_version_is_no_longer_listed_keeps_its_rules(m: Market) -> None:
    with m.server.client() as c:
        assert c.post(f"{ITEMS}/{GONE}:install").status_code == 201
        _forget_marks(m, GONE)
        m.serve(_index(gone_version="1.1.0"))  # the index moved on: 1.0.0 cannot be checked
        assert c.get(f"{ITEMS}/{GONE}").json()["version"] == "1.1.0"
        r = c.post(f"{ITEMS}/{GONE}:uninstall")
        assert r.status_code == 200, r.text
        assert r.json()["removed"] == [] and _kept(r.json()) == [(U, "unrecognised")]
        assert _yaml(c, U) is not None and store.get(m.server.aw.engine, GONE) is None
        assert c.delete(f"{RULES}/{U}").status_code == 204
