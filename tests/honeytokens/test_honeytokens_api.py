"""``/api/v1/honeytokens``: creating, listing, reading and revoking tokens on a real server,
with the bad input each route refuses, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentwatch.config import Settings
from tests.honeytokens.conftest import TOKENS, create, unique
from tests.support.server import RunningServer, run_server


def test_creation_answers_the_value_once_and_reads_never_show_it(srv: RunningServer) -> None:
    with srv.client() as c:
        made = create(c, name=f"repo key {unique()}", kind="api_key", location="acme/app/.env", description="bait")
        assert made["style"] == "openai" and made["status"] == "active" and made["touches"] == 0
        assert re.fullmatch(r"sk-proj-[A-Za-z0-9]{64}", made["value"])
        assert made["hint"] == made["value"][:12] + "…"
        assert made["created_by"] == "local:local"
        secret_part = made["value"].removeprefix("sk-proj-")
        read = c.get(f"{TOKENS}/{made['id']}")
        assert read.status_code == 200 and secret_part not in read.text and "value" not in read.json()
        assert read.json()["location"] == "acme/app/.env" and read.json()["description"] == "bait"
        listed = c.get(TOKENS, params={"q": made["name"]})
        assert listed.json()["total"] == 1 and secret_part not in listed.text


def test_each_kind_is_made_with_its_parts(srv: RunningServer) -> None:
    with srv.client() as c:
        url = create(c, name="doc link", kind="url")
        assert re.fullmatch(r"https://canary\.example/api/v1/honeytokens/track/[A-Za-z0-9]{32}", url["value"])
        assert url["parts"] == {"url": url["value"]}
        cred = create(c, name="db login", kind="credential", username="backup.admin")
        assert cred["username"] == "backup.admin" and cred["parts"]["username"] == "backup.admin"
        assert re.fullmatch(r"[A-Za-z0-9]{24}", cred["parts"]["password"])
        text = create(c, name="marker", kind="text", prefix="Orion")
        assert re.fullmatch(r"Orion-[A-Za-z0-9]{32}", text["value"])
        aws = create(c, name="aws", kind="api_key", style="aws")
        assert set(aws["parts"]) == {"access_key_id", "secret_access_key"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "password"}, "kind"),
        ({"name": "x"}, "kind"),
        ({"kind": "text"}, "name"),
        ({"name": "", "kind": "text"}, "name"),
        ({"name": "x" * 129, "kind": "text"}, "name"),
        ({"name": "a\x1bb", "kind": "text"}, "name"),
        ({"name": "x", "kind": "url", "style": "aws"}, "style"),
        ({"name": "x", "kind": "api_key", "style": "stripe"}, "style"),
        ({"name": "x", "kind": "api_key", "username": "bob"}, "username"),
        ({"name": "x", "kind": "credential", "username": "bob smith"}, "username"),
        ({"name": "x", "kind": "credential", "username": "b" * 65}, "username"),
        ({"name": "x", "kind": "text", "prefix": "9lives"}, "prefix"),
        ({"name": "x", "kind": "url", "prefix": "abc"}, "prefix"),
        ({"name": "x", "kind": "text", "description": "d" * 2001}, "description"),
        ({"name": "x", "kind": "text", "location": "l" * 513}, "location"),
        ({"name": "x", "kind": "text", "value": "mine"}, "value"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(srv: RunningServer, body: dict[str, Any], field: str) -> None:
    with srv.client() as c:
        r = c.post(TOKENS, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(f"{field}:"), r.text


def test_malformed_and_oversized_bodies(srv: RunningServer) -> None:
    with srv.client() as c:
        r = c.post(TOKENS, content=b"{", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("body:")
        r = c.post(TOKENS, json={"name": "x", "kind": "text", "description": "d" * 17_000})
        assert r.status_code == 413


def test_listing_filters_pages_and_refuses_bad_parameters(srv: RunningServer) -> None:
    tag = unique()
    with srv.client() as c:
        made = [create(c, name=f"page {tag} {i}", kind="text") for i in range(5)]
        create(c, name=f"page {tag} key", kind="api_key", style="github")
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"q": f"page {tag}", "kind": "text", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get(TOKENS, params=params).json()
            assert page["total"] == 5 and len(page["honeytokens"]) <= 2
            seen += [t["id"] for t in page["honeytokens"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [t["id"] for t in reversed(made)]  # newest first, each once
        assert c.get(TOKENS, params={"q": f"page {tag}", "kind": "api_key"}).json()["total"] == 1
        bad_params: list[dict[str, Any]] = [
            {"limit": 0},
            {"limit": 1001},
            {"kind": "password"},
            {"status": "sleeping"},
            {"cursor": "nope"},
            {"q": "q" * 129},
            {"colour": "red"},
        ]
        for bad in bad_params:
            r = c.get(TOKENS, params=bad)
            assert r.status_code == 400, (bad, r.text)
            assert next(iter(bad)) in r.json()["error"]["message"]
        for bad in ({"limit": 0}, {"source": "mail"}, {"token_id": "x" * 36}, {"cursor": "nope"}):
            r = c.get(f"{TOKENS}/events", params=bad)
            assert r.status_code == 400, (bad, r.text)


def test_unknown_and_malformed_ids(srv: RunningServer) -> None:
    missing = str(uuid.uuid4())
    with srv.client() as c:
        for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/events")):
            assert c.request(method, f"{TOKENS}/{missing}{path}").status_code == 404
            r = c.request(method, f"{TOKENS}/not-a-uuid{path}")
            assert r.status_code == 400 and r.json()["error"]["message"].startswith("id:")


def test_revoking_keeps_the_token_and_twice_is_a_conflict(srv: RunningServer) -> None:
    with srv.client() as c:
        made = create(c, name=f"revoke {unique()}", kind="text")
        assert c.delete(f"{TOKENS}/{made['id']}").status_code == 204
        again = c.delete(f"{TOKENS}/{made['id']}")
        assert again.status_code == 409 and again.json()["error"]["message"].startswith("id:")
        read = c.get(f"{TOKENS}/{made['id']}").json()
        assert read["status"] == "revoked" and read["revoked_by"] == "local:local" and read["revoked_at"]
        assert made["id"] in [t["id"] for t in c.get(TOKENS, params={"status": "revoked"}).json()["honeytokens"]]


def test_the_store_cap_answers_507(tmp_path: Path, database_url: str) -> None:
    cfg = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False}, honeytokens={"max_tokens": 2})
    with run_server(cfg) as s, s.client() as c:
        create(c, name="a", kind="text")
        create(c, name="b", kind="text")
        r = c.post(TOKENS, json={"name": "c", "kind": "text"})
        assert r.status_code == 507 and "honeytokens.max_tokens" in r.json()["error"]["message"]
        assert c.get(TOKENS).json()["total"] == 2
