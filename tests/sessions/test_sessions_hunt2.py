"""Defects found in a hunt over the sessions changes (cursor paging, goal ranking, budgets)."""

from __future__ import annotations

import itertools

from agentwatch.sessions.cursor import decode_cursor, encode_cursor
from tests.sessions.aop import ev

_SETTLE = itertools.count(1)


def post(c, events) -> dict:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return r.json()


def budget_alerts(c, sid: str) -> list[dict]:
    post(c, [ev("zz-settle-hunt2", next(_SETTLE), "session.heartbeat", agent="settle")])  # alerts are in
    return [a for a in c.get(f"/sessions/{sid}").json()["alerts"] if a["type"].endswith("_budget")]


def test_two_budgets_that_print_alike_are_alerts_of_their_own(shared_server):
    """The default budget (1,000,000 tokens, $10) fires; then the session's own budget arrives,
    a little larger (1,000,003 tokens, $10.000003), and is exceeded in turn. Both budgets print
    alike at six significant digits ("1e+06", "10"): the second alert must still be an alert of
    its own, not a repeat counted on the first."""
    sid = "hunt2-budget-alike"
    with shared_server.client() as c:
        post(c, [ev(sid, 2, "session.heartbeat", {"total_tokens": 1_000_002, "total_cost_usd": 10.000002}, at=2)])
        early = budget_alerts(c, sid)
        assert sorted(a["type"] for a in early) == ["cost_budget", "token_budget"]
        post(c, [ev(sid, 1, "session.started", {"token_budget": 1_000_003, "cost_budget_usd": 10.000003}, at=1)])
        assert len(budget_alerts(c, sid)) == 2  # not over the declared budget yet
        post(c, [ev(sid, 3, "session.heartbeat", {"total_tokens": 1_000_004, "total_cost_usd": 10.000004}, at=3)])
        found = budget_alerts(c, sid)
        assert sorted(a["type"] for a in found) == ["cost_budget", "cost_budget", "token_budget", "token_budget"]
        assert all(a["count"] == 1 for a in found), found
        budgets = set()
        for a in found:
            details = c.get(f"/api/v1/alerts/{a['id']}").json()["details"]
            budgets.add((a["type"], details.get("budget", details.get("budget_usd")), details["budget_from"]))
    assert budgets == {
        ("token_budget", 1_000_000, "aop.token_budget"),
        ("token_budget", 1_000_003, "session.started"),
        ("cost_budget", 10.0, "aop.cost_budget_usd"),
        ("cost_budget", 10.000003, "session.started"),
    }


def test_cursors_holding_extreme_times_and_non_ascii_ids_page_without_error(shared_server):
    """A cursor is checked only for its form: any finite time and any valid id is a position
    in the list, also one no session holds (deleted, or made up), on both databases."""
    ids = ["hx-ä", "hx-z", "hx-😀", "hx-A", "hx-é/x"]
    with shared_server.client() as c:
        post(c, [ev(sid, 1, "session.started", agent="hunt2-x") for sid in ids])  # one receive time
        whole = [s["id"] for s in c.get("/sessions", params={"agent": "hunt2-x"}).json()["sessions"]]
        assert whole == sorted(ids, reverse=True)  # code point order, descending
        for seen, sid, expect in [
            (1e308, "x", whole),
            (-1e308, "x", []),
            (5e-324, "x", []),
            (-0.0, "x", []),
            (0.0, "\U0010ffff" * 128, []),
        ]:
            r = c.get("/sessions", params={"agent": "hunt2-x", "cursor": encode_cursor(seen, sid)})
            assert r.status_code == 200, (seen, r.text)
            assert [s["id"] for s in r.json()["sessions"]] == expect, seen
        doc = c.get("/sessions", params={"agent": "hunt2-x", "limit": 2}).json()
        (seen, _sid) = decode_cursor(doc["next_cursor"])
        # the session the cursor names deleted: the next page still starts right after its place
        assert c.delete(f"/sessions/{whole[1].replace('/', '%2F')}").status_code == 200
        rest = c.get("/sessions", params={"agent": "hunt2-x", "limit": 2, "cursor": doc["next_cursor"]}).json()
        assert [s["id"] for s in rest["sessions"]] == whole[2:4]
        assert rest["total"] == 4 and rest["next_offset"] is None and rest["next_cursor"] is not None
