"""``GET /sessions?since=`` keeps exactly the sessions whose ``last_seen_at``, as the API shows
it, is at or after ``since``: a client that pages on from the newest ``last_seen_at`` it was
given must get that session (and any other active at that same time) again, not skip them."""

from __future__ import annotations

from datetime import datetime

from tests.sessions.aop import ev

AGENT = "since-agent"


def shown(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_since_keeps_the_sessions_shown_at_that_very_time(shared_server):
    with shared_server.client() as c:
        for i in range(40):  # one request each: forty receive times, at microsecond precision
            r = c.post("/events", json=ev(f"since-{i:02d}", 1, "session.started", agent=AGENT))
            assert r.status_code == 200, r.text
        everyone = c.get("/sessions", params={"agent": AGENT, "limit": 1000}).json()["sessions"]
        assert len(everyone) == 40
        missed = {}
        for s in everyone:
            since = s["last_seen_at"]
            got = c.get("/sessions", params={"agent": AGENT, "since": since, "limit": 1000}).json()
            expected = sorted(x["id"] for x in everyone if shown(x["last_seen_at"]) >= shown(since))
            if sorted(x["id"] for x in got["sessions"]) != expected or got["total"] != len(expected):
                missed[s["id"]] = since
    assert missed == {}, f"since=<its own last_seen_at> left these out: {missed}"


def test_since_far_in_the_past_or_future_still_answers(shared_server):
    with shared_server.client() as c:
        assert c.post("/events", json=ev("since-edges", 1, "session.started", agent="edges")).status_code == 200
        for since, total in [("0001-01-01T00:00:00Z", 1), ("1970-01-01T00:00:00Z", 1), ("9999-12-31T23:59:59Z", 0)]:
            r = c.get("/sessions", params={"agent": "edges", "since": since})
            assert r.status_code == 200 and r.json()["total"] == total, (since, r.text)
