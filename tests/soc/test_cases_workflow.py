"""AiSOC cases: changing and closing a case, comments, the timeline, the list with its filters
and keyset paging, the unlink when an alert is deleted, and who may write, on SQLite and
PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select

from agentwatch.alerts.recorder import delete_dependents
from agentwatch.soc.cases import store
from agentwatch.soc.cases.schema import case_alerts, case_comments
from tests.soc.helpers import auth_server, create, make_alert

# -- PATCH ----------------------------------------------------------------------------------


def test_patch_changes_fields_and_records_each_change_on_the_timeline(srv):
    a1, a2 = make_alert(srv.aw.engine), make_alert(srv.aw.engine)
    with srv.client() as c:
        case = create(c, assignee="alice", alert_ids=[a1])
        url = f"/api/v1/cases/{case['id']}"
        r = c.patch(url, json={"status": "investigating", "severity": 8, "tags": ["t1"], "alert_ids": [a2, a1]})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["status"], doc["severity"], doc["severity_label"], doc["tags"]) == (
            "investigating",
            8,
            "high",
            ["t1"],
        )
        assert doc["alert_ids"] == [a2, a1] and doc["assignee"] == "alice" and doc["closed_at"] is None
        assert doc["updated_at"] >= case["updated_at"]
        change = doc["timeline"][-1]
        assert change["kind"] == "change" and change["author"] == "local:local"
        assert change["fields"] == ["alert_ids", "severity", "status", "tags"]
        # null unassigns; a value equal to the current one is no change
        doc = c.patch(url, json={"assignee": None, "severity": 8}).json()
        assert doc["assignee"] is None and doc["timeline"][-1]["fields"] == ["assignee"]
        same = c.patch(url, json={"severity": 8})
        assert same.status_code == 200 and len(same.json()["timeline"]) == len(doc["timeline"])
        # alert_ids replaces the set
        assert c.patch(url, json={"alert_ids": []}).json()["alert_ids"] == []
        assert c.get(url).json()["alerts"] == []


def test_closing_sets_closed_at_and_reopening_clears_it(srv):
    with srv.client() as c:
        url = f"/api/v1/cases/{create(c)['id']}"
        closed = c.patch(url, json={"status": "closed"}).json()
        assert closed["status"] == "closed" and closed["closed_at"].endswith("Z")
        resolved = c.patch(url, json={"status": "resolved"}).json()
        assert resolved["status"] == "resolved" and resolved["closed_at"] is None
        assert c.get("/api/v1/cases", params={"status": "resolved"}).json()["cases"][0]["id"] == closed["id"]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "body", "give at least one of title"),
        ({"title": None}, "title", "must not be null"),
        ({"description": None}, "description", "must not be null"),
        ({"severity": None}, "severity", "must not be null"),
        ({"status": None}, "status", "must not be null"),
        ({"tags": None}, "tags", "must not be null"),
        ({"alert_ids": None}, "alert_ids", "must not be null"),
        ({"status": "done"}, "status", "'open', 'investigating', 'resolved' or 'closed'"),
        ({"title": "a\x00b"}, "title", "control characters"),
        ({"severity": 10.5}, "severity", "valid integer"),
        ({"assignee": "bob\u2028"}, "assignee", "control characters"),
        ({"alert_ids": ["ok", "bad/id"]}, "alert_ids.1", "letters, digits or dashes"),
        ({"status": "open", "owner": "x"}, "owner", "Extra inputs are not permitted"),
        ({"alert_ids": ["00000000-0000-0000-0000-00000000dead"]}, "alert_ids", "no such alert"),
    ],
)
def test_bad_patch_bodies_name_the_field_and_rule(srv, body, field, rule):
    with srv.client() as c:
        case = create(c)
        r = c.patch(f"/api/v1/cases/{case['id']}", json=body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{field}:") and rule in message, message
        assert c.get(f"/api/v1/cases/{case['id']}").json() == case  # nothing changed


def test_changes_are_audited_by_field_name(srv):
    with srv.client() as c:
        case = create(c)
        assert c.patch(f"/api/v1/cases/{case['id']}", json={"title": "secret words", "severity": 2}).status_code == 200
    (row,) = [e for e in srv.aw.audit.query(action="PATCH /api/v1/cases/{case_id}") if case["id"] in e["target"]]
    assert row["details"] == {"changed": ["severity", "title"]}  # names, never the values


# -- DELETE closes --------------------------------------------------------------------------


def test_delete_closes_the_case_and_keeps_it(srv):
    a1 = make_alert(srv.aw.engine)
    with srv.client() as c:
        case = create(c, alert_ids=[a1])
        url = f"/api/v1/cases/{case['id']}"
        assert c.post(f"{url}/comments", json={"body": "looked at it"}).status_code == 201
        r = c.delete(url)
        assert r.status_code == 200, r.text
        closed = r.json()
        assert closed["status"] == "closed" and closed["closed_at"] is not None
        assert closed["timeline"][-1]["title"] == "Case closed" and closed["timeline"][-1]["fields"] == ["status"]
        assert closed["alert_ids"] == [a1] and len(closed["comments"]) == 1  # the record stays whole
        assert c.get(url).json() == closed
        again = c.delete(url)  # closing a closed case changes nothing
        assert again.status_code == 200 and again.json() == closed


# -- comments and timeline ------------------------------------------------------------------


def test_comments_are_added_by_the_caller_and_listed_oldest_first(srv):
    with srv.client() as c:
        case = create(c)
        url = f"/api/v1/cases/{case['id']}"
        first = c.post(f"{url}/comments", json={"body": "first\nwith a second line"})
        assert first.status_code == 201, first.text
        comment = first.json()
        assert set(comment) == {"id", "author", "body", "created_at"} and comment["author"] == "local:local"
        c.post(f"{url}/comments", json={"body": "second"})
        got = c.get(url).json()
        assert [x["body"] for x in got["comments"]] == ["first\nwith a second line", "second"]
        assert got["comments"][0] == comment and got["updated_at"] >= comment["created_at"]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "body", "Field required"),
        ({"body": ""}, "body", "at least 1 character"),
        ({"body": " \n "}, "body", "blank"),
        ({"body": "x" * 10_001}, "body", "at most 10000 characters"),
        ({"body": "a\x00b"}, "body", "NUL"),
        ({"body": "b", "author": "admin"}, "author", "Extra inputs are not permitted"),
    ],
)
def test_bad_comments_name_the_field_and_rule(srv, body, field, rule):
    with srv.client() as c:
        case = create(c)
        r = c.post(f"/api/v1/cases/{case['id']}/comments", json=body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{field}:") and rule in message, message


def test_a_case_holds_at_most_its_cap_of_comments(srv):
    with srv.client() as c:
        case = create(c)
        now = time.time()
        rows = [
            {"id": str(uuid.uuid4()), "case_id": case["id"], "author": "x", "body": "b", "created_at": now}
            for _ in range(store.MAX_COMMENTS - 1)
        ]
        with srv.aw.engine.begin() as conn:
            conn.execute(insert(case_comments), rows)
        url = f"/api/v1/cases/{case['id']}/comments"
        assert c.post(url, json={"body": "the last one"}).status_code == 201
        full = c.post(url, json={"body": "one too many"})
        assert full.status_code == 409 and full.json()["error"]["message"].startswith("comments:"), full.text


def test_timeline_entries_are_ordered_by_their_time(srv):
    with srv.client() as c:
        case = create(c)
        url = f"/api/v1/cases/{case['id']}/timeline"
        r = c.post(url, json={"title": "Key rotated", "kind": "action", "ts": "2020-01-02T03:04:05Z"})
        assert r.status_code == 201, r.text
        entry = r.json()
        assert (entry["kind"], entry["ts"], entry["author"], entry["fields"]) == (
            "action",
            "2020-01-02T03:04:05Z",
            "local:local",
            [],
        )
        r = c.post(
            url,
            json={
                "title": "Log excerpt",
                "description": "line\nline",
                "kind": "evidence",
                "ts": "2020-01-01T00:00:00+02:00",
            },
        )
        assert r.json()["ts"] == "2019-12-31T22:00:00Z"
        now = c.post(url, json={"title": "Called the owner"}).json()
        assert now["kind"] == "note" and now["ts"] >= case["created_at"]
        timeline = c.get(f"/api/v1/cases/{case['id']}").json()["timeline"]
        assert [e["title"] for e in timeline] == ["Log excerpt", "Key rotated", "Case created", "Called the owner"]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "title", "Field required"),
        ({"title": "t", "kind": "change"}, "kind", "'note', 'evidence' or 'action'"),
        ({"title": "t", "ts": "yesterday"}, "ts", "RFC 3339"),
        ({"title": "t", "ts": 1700000000}, "ts", "valid string"),
        ({"title": "t", "ts": "1" * 65}, "ts", "at most 64 characters"),
        ({"title": "t", "description": "d" * 10_001}, "description", "at most 10000 characters"),
        ({"title": "t\x07"}, "title", "control characters"),
        ({"title": "t", "fields": ["status"]}, "fields", "Extra inputs are not permitted"),
    ],
)
def test_bad_timeline_entries_name_the_field_and_rule(srv, body, field, rule):
    with srv.client() as c:
        case = create(c)
        r = c.post(f"/api/v1/cases/{case['id']}/timeline", json=body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{field}:") and rule in message, message


# -- the list -------------------------------------------------------------------------------


def test_the_list_filters_combine(srv):
    alert = make_alert(srv.aw.engine)
    with srv.client() as c:
        hit = create(c, assignee="filter-carol", severity=7, status="investigating", alert_ids=[alert])
        create(c, assignee="filter-carol", severity=3, status="investigating")
        create(c, assignee="filter-dave", severity=9, status="investigating")

        def ids(**params: Any) -> list[str]:
            r = c.get("/api/v1/cases", params=params)
            assert r.status_code == 200, r.text
            return [x["id"] for x in r.json()["cases"]]

        assert ids(assignee="filter-carol", severity=5, status="investigating") == [hit["id"]]
        assert ids(alert_id=alert) == [hit["id"]]
        assert ids(assignee="filter-carol", status="closed") == []
        listed = c.get("/api/v1/cases", params={"alert_id": alert}).json()
        assert listed["meta"] == {"total": 1, "limit": 100} and listed["next_cursor"] is None
        item = listed["cases"][0]
        assert item["alert_ids"] == [alert] and "comments" not in item and "timeline" not in item


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "acknowledged"}, "status"),
        ({"severity": 11}, "severity"),
        ({"severity": "high"}, "severity"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"assignee": ""}, "assignee"),
        ({"alert_id": "bad id"}, "alert_id"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # [1,2]: a list, but no case id in it
        ({"cursor": "x" * 257}, "cursor"),
    ],
)
def test_bad_list_parameters_name_the_parameter(srv, params, field):
    with srv.client() as c:
        r = c.get("/api/v1/cases", params=params)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text


def test_cursor_paging_visits_every_case_once_newest_first(srv):
    with srv.client() as c:
        made = [create(c, assignee="pager")["id"] for _ in range(7)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"assignee": "pager", "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/v1/cases", params=params).json()
            assert page["meta"]["total"] == 7 and len(page["cases"]) <= 3
            seen += [x["id"] for x in page["cases"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == made[::-1]


# -- deleting an alert unlinks it -----------------------------------------------------------


def test_deleting_an_alert_removes_its_links_and_keeps_the_cases(srv):
    gone, kept = make_alert(srv.aw.engine), make_alert(srv.aw.engine)
    with srv.client() as c:
        case = create(c, alert_ids=[gone, kept])
        other = create(c, alert_ids=[gone])
        assert c.delete(f"/api/v1/alerts/{gone}").status_code == 204
        doc = c.get(f"/api/v1/cases/{case['id']}").json()
        assert doc["alert_ids"] == [kept] and [a["id"] for a in doc["alerts"]] == [kept]
        assert c.get(f"/api/v1/cases/{other['id']}").json()["alert_ids"] == []
        assert c.get("/api/v1/cases", params={"alert_id": gone}).json()["cases"] == []
    with srv.aw.engine.connect() as conn:
        assert conn.execute(select(case_alerts).where(case_alerts.c.alert_id == gone)).all() == []


def test_delete_dependents_unlinks_cases_in_the_callers_transaction(engine):
    """The store path session deletion takes (it deletes many alerts at once)."""
    a1, a2 = make_alert(engine), make_alert(engine)
    case_id = store.create_case(
        engine, {"title": "t", "severity": 5, "status": "open", "alert_ids": [a1, a2]}, "user:u"
    )
    with engine.begin() as conn:
        delete_dependents(conn, [a1])
    assert store.get_case(engine, case_id)["alert_ids"] == [a2]


# -- permissions ----------------------------------------------------------------------------


def test_writes_need_cases_write_and_reads_alerts_read(module_database_url, tmp_path_factory):
    with auth_server(module_database_url, tmp_path_factory.mktemp("auth")) as srv:
        c, key = srv.client, srv.key
        _, reader = key("alerts:read")
        writer_id, writer = key("alerts:read", "cases:write")
        made = c.post("/api/v1/cases", headers=writer, json={"title": "by key"})
        assert made.status_code == 201 and made.json()["created_by"] == f"api_key:{writer_id}"
        url = f"/api/v1/cases/{made.json()['id']}"
        assert c.post("/api/v1/cases", headers=reader, json={"title": "t"}).status_code == 403
        assert c.patch(url, headers=reader, json={"status": "closed"}).status_code == 403
        assert c.delete(url, headers=reader).status_code == 403
        assert c.post(f"{url}/comments", headers=reader, json={"body": "b"}).status_code == 403
        assert c.post(f"{url}/timeline", headers=reader, json={"title": "t"}).status_code == 403
        assert c.get(url, headers=reader).status_code == 200
        listed = c.get("/api/v1/cases", headers=reader, params={"limit": 1000}).json()["cases"]
        assert made.json()["id"] in [x["id"] for x in listed]
        _, writer_only = key("cases:write")
        assert c.get(url, headers=writer_only).status_code == 403
        assert c.get(url).status_code == 401
        assert c.post(f"{url}/comments", headers=writer, json={"body": "b"}).json()["author"] == f"api_key:{writer_id}"
        assert c.delete(url, headers=writer).json()["status"] == "closed"
