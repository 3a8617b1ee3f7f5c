"""Bad input gets a 4xx naming the field and the rule; every route needs its permission; lists page."""

from __future__ import annotations

import uuid

import pytest

from tests.detect.proposals.helpers import ROUTE, create, proposal, sigma, tool_call, unique

MISSING = "00000000-0000-4000-8000-000000000000"


def _refused(c, headers, body, status: int = 400) -> str:
    r = c.post(ROUTE, json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()["error"]["message"]


def test_bad_logic_is_refused_with_where_and_why(team):
    c, h = team.client, team.analyst
    base = proposal(unique("bad"))
    r = c.post(ROUTE, json={**base, "logic": "title: x\nlogsource: {product: agentwatch\ndetection: [\n"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("logic: ")
    where = r.json()["error"]["details"]
    assert where["field"] == "logic" and where["line"] >= 2 and isinstance(where["column"], int)

    unsafe = sigma("x").replace("tool_name: x", "tool_name|re: '" + "(a)" * 3000 + "'")
    assert "regex longer than 8192" in _refused(c, h, {**base, "logic": unsafe})
    unmapped = sigma("x").replace("tool_name:", "NoSuchField:")
    assert _refused(c, h, {**base, "logic": unmapped}).startswith("logic: ")
    modifier = sigma("x").replace("tool_name:", "tool_name|sparkle:")
    assert "sparkle" in _refused(c, h, {**base, "logic": modifier})
    two = sigma("x") + "---\n" + sigma("y")
    assert "exactly one Sigma detection rule" in _refused(c, h, {**base, "logic": two})
    huge = sigma("x") + "# " + "z" * (64 * 1024) + "\n"
    assert _refused(c, h, {**base, "logic": huge}).startswith("logic: ")
    assert _refused(c, h, {**base, "logic": "   "}).startswith("logic: ")


def test_a_catastrophic_regex_is_run_time_limited(team):
    c, h = team.client, team.analyst
    tool = unique("redos")
    logic = sigma("x").replace("tool_name: x", "tool_name|re: '^(?=(a+)+b)'")
    cases = {"must_match": [tool_call("aab")], "must_not_match": [tool_call("a" * 40 + "c")]}
    p = create(c, h, proposal(tool, logic=logic, test_cases=cases))
    ev = c.post(f"{ROUTE}/{p['id']}/eval", headers=h, timeout=60)
    assert ev.status_code == 201 and ev.json()["result"]["test_cases"]["must_not_match"]["failed"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"test_cases": {"must_match": [tool_call("x")] * 26, "must_not_match": [tool_call("y")] * 25}}, "test_cases"),
        ({"test_cases": {"must_match": [tool_call("x")] * 51}}, "test_cases.must_match"),
        ({"test_cases": {"must_match": []}}, "test_cases.must_match"),
        ({"test_cases": {"must_match": [{"event_type": "no.such"}]}}, "test_cases"),
        ({"test_cases": {"must_match": [tool_call("x", note="n" * 17_000)]}}, "test_cases"),
        ({"test_cases": {"must_match": [tool_call("x")], "maybe": []}}, "test_cases.maybe"),
        ({"mitre_tags": ["execution"]}, "mitre_tags"),
        ({"mitre_tags": ["T1059"] * 33}, "mitre_tags"),
        ({"title": ""}, "title"),
        ({"title": "a\x1bb"}, "title"),
        ({"description": "d" * 10_001}, "description"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_bad_fields_are_named(team, change, field):
    message = _refused(team.client, team.analyst, {**proposal(unique("f")), **change})
    assert message.startswith(f"{field}: "), message


def test_bad_case_event_names_the_case_and_field(team):
    body = proposal(unique("case"), test_cases={"must_match": [tool_call("x"), {"event_type": "no.such"}]})
    message = _refused(team.client, team.analyst, body)
    assert "must_match[1].event_type: unknown event type" in message


def test_unknown_and_malformed_ids_and_bad_bodies(team):
    c, h, a = team.client, team.analyst, team.admin1
    for method, path, body in (
        ("get", "", None),
        ("patch", "", {"title": "t"}),
        ("post", "/comment", {"body": "b"}),
        ("post", "/eval", None),
        ("post", "/decide", {"decision": "approve", "reason": "r"}),
        ("post", "/promote", None),
    ):
        r = c.request(method.upper(), f"{ROUTE}/{MISSING}{path}", json=body, headers=a)
        assert r.status_code == 404, (path, r.text)
        r = c.request(method.upper(), f"{ROUTE}/NOT-AN-ID{path}", json=body, headers=a)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("proposal_id: "), path
    p = create(c, h, proposal(unique("b")))
    pid = p["id"]
    bad = [
        ("comment", {"body": "   "}, h, "body: "),
        ("comment", {"body": "x" * 10_001}, h, "body: "),
        ("decide", {"decision": "maybe", "reason": "r"}, a, "decision: "),
        ("decide", {"decision": "approve"}, a, "reason: "),
        ("decide", {"decision": "approve", "reason": "r", "logic_version": "1"}, a, "logic_version: "),
        ("eval", {"external": {"metrics": {"bad name!": 1}}}, h, "external.metrics: "),
        ("eval", {"external": {"metrics": {f"m{i}": 1 for i in range(65)}}}, h, "external.metrics: "),
        ("eval", {"window": 5}, h, "window: "),
    ]
    for path, body, who, start in bad:
        r = c.post(f"{ROUTE}/{pid}/{path}", json=body, headers=who)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(start), (path, body, r.text)
    r = c.patch(f"{ROUTE}/{pid}", json={}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("body: ")
    r = c.patch(f"{ROUTE}/{pid}", json={"logic": None}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("logic: ")
    r = c.patch(f"{ROUTE}/{pid}", json={"logic": "detection: ["}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "logic"
    assert c.get(f"{ROUTE}/{pid}", headers=h).json()["logic_version"] == 1  # nothing was changed


def test_every_route_needs_its_permission(team):
    c = team.client
    p = create(c, team.analyst, proposal(unique("perm")))
    pid = p["id"]
    routes = [
        ("GET", ROUTE, None, "rules:read"),
        ("GET", f"{ROUTE}/{pid}", None, "rules:read"),
        ("GET", f"{ROUTE}/baseline", None, "rules:read"),
        ("POST", ROUTE, proposal(unique("p")), "rules:write"),
        ("PATCH", f"{ROUTE}/{pid}", {"title": "t"}, "rules:write"),
        ("POST", f"{ROUTE}/{pid}/comment", {"body": "b"}, "rules:write"),
        ("POST", f"{ROUTE}/{pid}/eval", None, "rules:write"),
        ("POST", f"{ROUTE}/baseline", None, "rules:write"),
        ("POST", f"{ROUTE}/{pid}/decide", {"decision": "reject", "reason": "r"}, "rules:approve"),
        ("POST", f"{ROUTE}/{pid}/promote", None, "rules:approve"),
    ]
    key = c.post("/api/v1/api-keys", headers=team.admin1, json={"name": "ingest", "scopes": ["events:write"]})
    nothing = {"X-API-Key": key.json()["key"]}
    for method, path, body, perm in routes:
        assert c.request(method, path, json=body).status_code == 401, path
        r = c.request(method, path, json=body, headers=nothing)
        assert r.status_code == 403 and perm in r.json()["error"]["message"], (path, r.text)
    # the viewer reads; the analyst writes but does not decide
    assert c.get(f"{ROUTE}/{pid}", headers=team.viewer).status_code == 200
    assert c.post(f"{ROUTE}/{pid}/comment", json={"body": "b"}, headers=team.viewer).status_code == 403
    r = c.post(f"{ROUTE}/{pid}/promote", headers=team.analyst)
    assert r.status_code == 403 and "rules:approve" in r.json()["error"]["message"]


def test_list_filters_by_status_and_pages_with_a_cursor(team):
    c, h = team.client, team.analyst
    made = [create(c, h, proposal(unique("page")))["id"] for _ in range(3)]
    rejected = made[0]
    r = c.post(f"{ROUTE}/{rejected}/decide", json={"decision": "reject", "reason": "dup"}, headers=team.admin1)
    assert r.status_code == 200
    first = c.get(ROUTE, params={"limit": 2}, headers=team.viewer).json()
    assert [p["id"] for p in first["proposals"]] == [made[2], made[1]] and first["next_cursor"]
    assert "logic" not in first["proposals"][0]  # the list is a summary
    second = c.get(ROUTE, params={"limit": 2, "cursor": first["next_cursor"]}, headers=team.viewer).json()
    assert second["proposals"][0]["id"] == rejected
    only = c.get(ROUTE, params={"status": "rejected", "limit": 200}, headers=team.viewer).json()
    assert rejected in {p["id"] for p in only["proposals"]} and {p["status"] for p in only["proposals"]} == {"rejected"}
    for params, start in (
        ({"status": "pending"}, "status: "),
        ({"cursor": "bm9wZQ"}, "cursor: "),
        ({"limit": 0}, "limit"),
        ({"sort": "x"}, "sort: "),
    ):
        r = c.get(ROUTE, params=params, headers=team.viewer)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(start), params
    assert c.get(f"{ROUTE}/{uuid.uuid4()}", headers=team.viewer).status_code == 404
