"""Defects found by a hunt through the cases API, each pinned on SQLite and PostgreSQL: what a
credential without ``alerts:read`` learns from a write, and title characters the README
refuses."""

from __future__ import annotations

import pytest

from tests.soc.helpers import auth_server, create, make_alert

# -- a write answers the case: it needs alerts:read as reading does -----------------------------


def test_a_writer_without_alerts_read_reads_nothing_through_writes(module_database_url, tmp_path_factory):
    with auth_server(module_database_url, tmp_path_factory.mktemp("hunt-auth")) as srv:
        s, c, admin = srv.server, srv.client, srv.admin
        _, writer_only = srv.key("cases:write")
        secret = make_alert(s.aw.engine, 9)
        with s.client(headers=admin) as as_admin:
            case = create(as_admin, title="private", alert_ids=[secret])
        url = f"/api/v1/cases/{case['id']}"
        assert c.post(f"{url}/comments", headers=admin, json={"body": "only for readers"}).status_code == 201

        def refused(r) -> None:  # noqa: ANN001
            assert r.status_code == 403, r.text
            assert "alerts:read" in r.json()["error"]["message"]
            assert "private" not in r.text and secret not in r.text and "only for readers" not in r.text

        # the key may not read the case, nor an alert's summary by linking it to a new case
        assert c.get(url, headers=writer_only).status_code == 403
        refused(c.post("/api/v1/cases", headers=writer_only, json={"title": "probe", "alert_ids": [secret]}))
        refused(c.patch(url, headers=writer_only, json={"severity": case["severity"]}))
        refused(c.delete(url, headers=writer_only))
        after = c.get(url, headers=admin).json()
        assert after["status"] == "open" and after["timeline"] == case["timeline"]  # nothing was done
        probes = c.get("/api/v1/cases", headers=admin, params={"alert_id": secret}).json()
        assert [x["id"] for x in probes["cases"]] == [case["id"]]  # no case was created by the key
        # a comment or a timeline entry answers only itself: cases:write alone still adds them
        comment = c.post(f"{url}/comments", headers=writer_only, json={"body": "seen on the wire"})
        assert comment.status_code == 201 and set(comment.json()) == {"id", "author", "body", "created_at"}
        entry = c.post(f"{url}/timeline", headers=writer_only, json={"title": "Blocked the key"})
        assert entry.status_code == 201 and entry.json()["title"] == "Blocked the key"


# -- titles refuse every bidi control, as the README says ---------------------------------------


@pytest.mark.parametrize("char", ["\u200e", "\u200f", "\u061c"])  # LRM, RLM, ALM: Bidi_Control too
def test_titles_refuse_the_bidi_marks(srv, char):
    with srv.client() as c:
        r = c.post("/api/v1/cases", json={"title": f"a{char}b"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("title:"), r.text
        case = create(c)
        url = f"/api/v1/cases/{case['id']}"
        r = c.patch(url, json={"title": f"evil{char}"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("title:"), r.text
        r = c.post(f"{url}/timeline", json={"title": f"{char}note"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("title:"), r.text
        assert c.get(url).json() == case
