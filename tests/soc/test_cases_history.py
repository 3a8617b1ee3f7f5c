"""A case's detail holds only the newest comments and timeline entries (a case may hold 10,000
comments of 10,000 characters, and every change adds an entry); the history routes page through
all of them, on SQLite and PostgreSQL."""

from __future__ import annotations

from agentwatch.soc.cases import history
from tests.soc.helpers import MISSING, create


def test_the_detail_holds_the_newest_and_the_history_routes_hold_all(srv, monkeypatch):
    monkeypatch.setattr(history, "DETAIL_ITEMS", 3)
    with srv.client() as c:
        case = create(c)
        url = f"/api/v1/cases/{case['id']}"
        for i in range(5):
            assert c.post(f"{url}/comments", json={"body": f"comment {i}"}).status_code == 201
            assert c.patch(url, json={"severity": i}).status_code == 200  # a change entry each (0 is new: 5 was)
        doc = c.get(url).json()
        assert [x["body"] for x in doc["comments"]] == ["comment 2", "comment 3", "comment 4"]
        assert doc["comments_total"] == 5
        # "Case created" and five changes; the detail shows the last three, oldest first
        assert doc["timeline_total"] == 6 and len(doc["timeline"]) == 3
        assert [e["fields"] for e in doc["timeline"]] == [["severity"]] * 3

        pages = [c.get(f"{url}/comments", params={"limit": 2, "page": p}).json() for p in (1, 2, 3)]
        assert [x["body"] for pg in pages for x in pg["comments"]] == [f"comment {i}" for i in range(5)]
        assert pages[0]["meta"] == {"total": 5, "page": 1, "limit": 2}
        timeline = c.get(f"{url}/timeline", params={"limit": 1000}).json()
        assert timeline["meta"]["total"] == 6
        assert [e["title"] for e in timeline["timeline"]][0] == "Case created"


def test_the_history_routes_refuse_bad_ids_pages_and_parameters(srv):
    with srv.client() as c:
        case = create(c)
        for which in ("comments", "timeline"):
            assert c.get(f"/api/v1/cases/{MISSING}/{which}").status_code == 404
            bad_id = c.get(f"/api/v1/cases/NOT-A-CASE/{which}")
            assert bad_id.status_code == 400 and bad_id.json()["error"]["message"].startswith("case_id:")
            for params, field in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"page": 0}, "page")):
                r = c.get(f"/api/v1/cases/{case['id']}/{which}", params=params)
                assert r.status_code == 400 and field in r.json()["error"]["message"], r.text
            r = c.get(f"/api/v1/cases/{case['id']}/{which}", params={"cursor": "x"})
            assert r.status_code == 400 and "cursor" in r.json()["error"]["message"]
