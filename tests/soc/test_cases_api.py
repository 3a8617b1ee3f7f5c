"""AiSOC cases (``/api/v1/cases``): create, detail, and every validation rule of a case and of
its ids, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.soc.helpers import MISSING, create, make_alert

# -- create and read ----------------------------------------------------------------------------


def test_create_with_defaults_and_read_it_back(srv):
    with srv.client() as c:
        case = create(c, title="Exfiltration via tool call")
        uuid.UUID(case["id"], version=4)
        assert case["title"] == "Exfiltration via tool call" and case["description"] == ""
        assert (case["severity"], case["severity_label"], case["status"]) == (5, "medium", "open")
        assert (case["assignee"], case["tags"], case["alert_ids"], case["closed_at"]) == (None, [], [], None)
        assert case["created_by"] == "local:local"  # the --no-auth principal, as kind:id
        assert case["created_at"].endswith("Z") and case["updated_at"] == case["created_at"]
        assert case["comments"] == [] and case["alerts"] == []
        (entry,) = case["timeline"]
        assert (entry["kind"], entry["title"], entry["author"]) == ("change", "Case created", "local:local")
        got = c.get(f"/api/v1/cases/{case['id']}")
        assert got.status_code == 200 and got.json() == case


def test_create_links_alerts_and_the_detail_summarises_them(srv):
    a1, a2 = make_alert(srv.aw.engine, 9), make_alert(srv.aw.engine, 3)
    with srv.client() as c:
        case = create(
            c,
            title="Two alerts",
            description="line one\nline two\ttabbed",
            severity=9,
            status="investigating",
            assignee="alice@example.com",
            tags=["exfil", "prod", "exfil"],
            alert_ids=[a2, a1, a2],
        )
        assert case["severity_label"] == "critical" and case["status"] == "investigating"
        assert case["tags"] == ["exfil", "prod"] and case["alert_ids"] == [a2, a1]  # repeats collapse
        assert case["description"] == "line one\nline two\ttabbed"
        assert [a["id"] for a in case["alerts"]] == [a2, a1]
        summary = case["alerts"][1]
        assert set(summary) == {"id", "title", "severity", "severity_label", "status", "rule_id", "last_seen"}
        assert (summary["severity"], summary["status"], summary["last_seen"][-1]) == (9, "open", "Z")


def test_a_case_created_closed_has_closed_at(srv):
    with srv.client() as c:
        assert create(c, status="closed")["closed_at"] is not None


def test_unknown_alert_ids_are_refused_naming_them_and_nothing_is_stored(srv):
    known = make_alert(srv.aw.engine)
    with srv.client() as c:
        before = c.get("/api/v1/cases").json()["meta"]["total"]
        r = c.post("/api/v1/cases", json={"title": "t", "alert_ids": [known, MISSING, "no-such-alert"]})
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith("alert_ids:") and MISSING in message and "no-such-alert" in message
        assert known not in message
        assert r.json()["error"]["details"] == {"alert_ids": [MISSING, "no-such-alert"]}
        assert c.get("/api/v1/cases").json()["meta"]["total"] == before


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "title", "Field required"),
        ({"title": ""}, "title", "at least 1 character"),
        ({"title": "   "}, "title", "blank"),
        ({"title": "t" * 257}, "title", "at most 256 characters"),
        ({"title": "a\x1b[31mred"}, "title", "control characters"),
        ({"title": "a\u202eevil"}, "title", "control characters"),
        ({"title": 5}, "title", "valid string"),
        ({"title": "t", "description": "d" * 10_001}, "description", "at most 10000 characters"),
        ({"title": "t", "description": "a\x00b"}, "description", "NUL"),
        ({"title": "t", "severity": 11}, "severity", "less than or equal to 10"),
        ({"title": "t", "severity": -1}, "severity", "greater than or equal to 0"),
        ({"title": "t", "severity": "5"}, "severity", "valid integer"),
        ({"title": "t", "severity": True}, "severity", "valid integer"),
        ({"title": "t", "status": "acknowledged"}, "status", "'open', 'investigating', 'resolved' or 'closed'"),
        ({"title": "t", "assignee": ""}, "assignee", "at least 1 character"),
        ({"title": "t", "assignee": "a" * 129}, "assignee", "at most 128 characters"),
        ({"title": "t", "assignee": " alice"}, "assignee", "surrounding blanks"),
        ({"title": "t", "assignee": "al\x00ice"}, "assignee", "control characters"),
        ({"title": "t", "tags": [f"t{i}" for i in range(33)]}, "tags", "at most 32 items"),
        ({"title": "t", "tags": ["x" * 65]}, "tags.0", "at most 64 characters"),
        ({"title": "t", "tags": ["ok", ""]}, "tags.1", "at least 1 character"),
        ({"title": "t", "tags": ["a\nb"]}, "tags.0", "control characters"),
        ({"title": "t", "tags": "exfil"}, "tags", "valid list"),
        ({"title": "t", "alert_ids": ["a"] * 1001}, "alert_ids", "at most 1000 items"),
        ({"title": "t", "alert_ids": ["bad id!"]}, "alert_ids.0", "letters, digits or dashes"),
        ({"title": "t", "alert_ids": ["abc\n"]}, "alert_ids.0", "letters, digits or dashes"),
        ({"title": "t", "alert_ids": ["\u0661\u0662"]}, "alert_ids.0", "letters, digits or dashes"),
        ({"title": "t", "created_by": "admin"}, "created_by", "Extra inputs are not permitted"),
        ({"title": "t", "closed_at": None}, "closed_at", "Extra inputs are not permitted"),
        ([{"title": "t"}], "body", "valid dictionary"),
    ],
)
def test_bad_create_bodies_name_the_field_and_rule(srv, body, field, rule):
    with srv.client() as c:
        r = c.post("/api/v1/cases", json=body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{field}:") and rule in message, message


def test_malformed_empty_and_oversized_bodies(srv):
    with srv.client() as c:
        case = create(c)
        url = f"/api/v1/cases/{case['id']}"
        headers = {"Content-Type": "application/json"}
        for method, path in (
            ("POST", "/api/v1/cases"),
            ("PATCH", url),
            ("POST", f"{url}/comments"),
            ("POST", f"{url}/timeline"),
        ):
            bad = c.request(method, path, content=b"{not json", headers=headers)
            assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("body:"), (path, bad.text)
            empty = c.request(method, path, content=b"", headers=headers)
            assert empty.status_code == 400 and empty.json()["error"]["message"].startswith("body:"), path
        huge = {"title": "t", "description": "d" * 300_000}
        for method, path in (("POST", "/api/v1/cases"), ("PATCH", url)):
            r = c.request(method, path, json=huge)
            assert r.status_code == 413 and r.json()["error"]["message"].startswith("body:"), path
        for path in (f"{url}/comments", f"{url}/timeline"):
            r = c.post(path, json={"body": "b" * 140_000})
            assert r.status_code == 413 and r.json()["error"]["message"].startswith("body:"), path
        assert c.get(url).json() == case  # nothing changed


def test_the_longest_texts_fit_their_bodies_however_they_are_escaped(srv):
    """10,000 characters are 10,000 characters however JSON spells them: an emoji each, which a
    client escaping every non-ASCII character (Python's json by default) sends as 12 bytes."""
    emoji = "\U0001f512" * 10_000
    headers = {"Content-Type": "application/json"}

    def send(c, path, body):
        return c.post(path, content=json.dumps(body).encode(), headers=headers)  # every non-ASCII escaped

    with srv.client() as c:
        tags = [f"t{i:02d}" + "\u00e9" * 59 for i in range(32)]
        r = send(c, "/api/v1/cases", {"title": "t", "description": emoji, "tags": tags})
        assert r.status_code == 201, r.text[:300]
        case = r.json()
        assert case["description"] == emoji
        r = send(c, f"/api/v1/cases/{case['id']}/comments", {"body": emoji})
        assert r.status_code == 201 and r.json()["body"] == emoji
        r = send(c, f"/api/v1/cases/{case['id']}/timeline", {"title": "t", "description": emoji})
        assert r.status_code == 201 and r.json()["description"] == emoji


# -- ids ------------------------------------------------------------------------------------


BAD_IDS = [
    "not-a-uuid",
    "ABCDEF00-0000-4000-8000-00000000000A",
    MISSING.replace("-", ""),
    MISSING + "%0A",
    "\u0661" * 8 + MISSING[8:],
]


def every_route(c, url: str) -> tuple:  # noqa: ANN001
    """One request of each route of one case."""
    return (
        c.get(url),
        c.patch(url, json={"status": "closed"}),
        c.delete(url),
        c.post(f"{url}/comments", json={"body": "b"}),
        c.post(f"{url}/timeline", json={"title": "t"}),
    )


@pytest.mark.parametrize("bad", BAD_IDS)
def test_malformed_case_ids_are_refused_on_every_route(srv, bad):
    with srv.client() as c:
        url = f"/api/v1/cases/{bad}"
        for r in every_route(c, url):
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith("case_id:"), r.text


def test_unknown_case_ids_are_404_on_every_route(srv):
    with srv.client() as c:
        url = f"/api/v1/cases/{MISSING}"
        for r in every_route(c, url):
            assert r.status_code == 404, r.text
            assert r.json()["error"] == {
                "code": "NOT_FOUND",
                "message": "case not found",
                "details": {"case_id": MISSING},
            }


def test_unknown_query_parameters_are_refused(srv):
    with srv.client() as c:
        case = create(c)
        for r in (
            c.get("/api/v1/cases", params={"sort": "asc"}),
            c.get(f"/api/v1/cases/{case['id']}", params={"sort": "asc"}),
            c.delete(f"/api/v1/cases/{case['id']}", params={"force": "1"}),
        ):
            assert r.status_code == 400 and "unknown query parameter" in r.json()["error"]["message"], r.text
        assert c.get(f"/api/v1/cases/{case['id']}").json()["status"] == "open"
