"""The parent/child links of sessions stay a tree: a session cannot become its own ancestor.

The envelope refuses a session naming itself as parent; naming one of its descendants (a
child, a grandchild) would close a loop just the same. Such a link is not taken: the session
keeps no parent (or the one it had), and its events are stored as sent.
"""

from __future__ import annotations

from tests.sessions.aop import ev


def post(c, events) -> None:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def parent_of(c, sid: str) -> str | None:
    return c.get(f"/sessions/{sid}").json()["session"]["parent_session_id"]


def children_of(c, sid: str) -> list[str]:
    return [s["id"] for s in c.get("/sessions", params={"parent": sid}).json()["sessions"]]


def test_two_sessions_naming_each_other_keep_the_first_link(shared_server):
    with shared_server.client() as c:
        post(c, [ev("pair-a", 1, "session.started", parent="pair-b")])  # a child that arrives first
        post(c, [ev("pair-b", 1, "session.started", parent="pair-a")])
        assert parent_of(c, "pair-a") == "pair-b"
        assert parent_of(c, "pair-b") is None
        assert children_of(c, "pair-b") == ["pair-a"] and children_of(c, "pair-a") == []
        raw = c.get("/sessions/pair-b").json()["events"]
        assert raw[0]["parent_session_id"] == "pair-a"  # the event itself is kept as sent


def test_a_root_naming_its_grandchild_as_parent_stays_a_root(shared_server):
    with shared_server.client() as c:
        post(c, [ev("root", 1, "session.started")])
        post(c, [ev("kid", 1, "session.started", parent="root"), ev("grandkid", 1, "session.started", parent="kid")])
        post(c, [ev("root", 2, "cognition.thought", {"content": "?"}, parent="grandkid")])
        assert parent_of(c, "root") is None
        assert c.get("/sessions/root").json()["session"]["event_count"] == 2


def test_a_loop_closed_within_one_batch_is_not_taken(shared_server):
    with shared_server.client() as c:
        post(
            c,
            [
                ev("ring-1", 1, "session.started", parent="ring-3"),
                ev("ring-2", 1, "session.started", parent="ring-1"),
                ev("ring-3", 1, "session.started", parent="ring-2"),
            ],
        )
        parents = {sid: parent_of(c, sid) for sid in ("ring-1", "ring-2", "ring-3")}
    # folded in the batch's order: the link that would close the ring, the last, is not taken
    assert parents == {"ring-1": "ring-3", "ring-2": "ring-1", "ring-3": None}


def test_a_deep_chain_stays_whole_and_deletes_as_one_subtree(shared_server):
    depth = 300
    chain = [ev("deep-0", 1, "session.started")]
    chain += [ev(f"deep-{i}", 1, "session.started", parent=f"deep-{i - 1}") for i in range(1, depth)]
    with shared_server.client() as c:
        for i in range(0, depth, 100):
            post(c, chain[i : i + 100])
        post(c, [ev("deep-0", 2, "session.heartbeat", parent=f"deep-{depth - 1}")])  # the deepest as parent
        assert parent_of(c, "deep-0") is None
        assert parent_of(c, f"deep-{depth - 1}") == f"deep-{depth - 2}"
        r = c.delete("/sessions/deep-0", params={"recursive": "true"})
        assert r.status_code == 200 and r.json()["deleted"]["sessions"] == depth


def test_a_tree_past_the_recursive_delete_cap_is_refused_whole_not_cut(shared_server, monkeypatch):
    """A recursive delete takes at most ``MAX_SUBTREE`` sessions at once: past it, it deleted
    the first part of the tree, answered ok, and left the rest behind; now it deletes nothing
    and says so (413)."""
    from agentwatch.sessions import queries

    monkeypatch.setattr(queries, "MAX_SUBTREE", 4)  # the cap is 10,000: a smaller one, same rule
    with shared_server.client() as c:
        post(c, [ev("big-root", 1, "session.started")])
        post(c, [ev(f"big-kid-{i}", 1, "session.started", parent="big-root") for i in range(4)])
        r = c.delete("/sessions/big-root", params={"recursive": "true"})
        assert r.status_code == 413, r.text
        assert "holds more than 4 sessions" in r.json()["error"]["message"]
        assert sorted(children_of(c, "big-root")) == [f"big-kid-{i}" for i in range(4)]  # all kept
        assert c.delete("/sessions/big-kid-0", params={"recursive": "true"}).status_code == 200
        r = c.delete("/sessions/big-root", params={"recursive": "true"})
        assert r.status_code == 200 and len(r.json()["deleted"]["session_ids"]) == 4
        assert c.get("/sessions/big-kid-3").status_code == 404
