"""``GET /sessions?cursor=``: keyset paging over the list ordered by activity.

With ``offset``, a session that becomes active between two page requests moves to the top and
every row under it shifts down one place, so a session further down that did not change is
listed twice or skipped. A cursor names the last row given (its exact stored ``last_seen_at``
and its id), so the next page starts after that row wherever the others moved.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from agentwatch.sessions.cursor import MAX_CURSOR, decode_cursor, encode_cursor
from agentwatch.sessions.schema import aop_sessions
from tests.sessions.aop import ev
from tests.sessions.test_query_parity import IDS, code_point_order, icu_database
from tests.support.server import RunningServer, open_settings, run_server


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def post(c, events) -> None:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def walk(c, params: dict, limit: int, between: Callable[[int], None] | None = None) -> list[str]:
    """Every id the cursor pages give, in order; ``between(n)`` runs before page n (n >= 1)."""
    ids: list[str] = []
    doc = c.get("/sessions", params={**params, "limit": limit}).json()
    for n in range(1, 10_000):
        ids += [s["id"] for s in doc["sessions"]]
        if doc["next_cursor"] is None:
            assert len(doc["sessions"]) <= limit
            return ids
        assert len(doc["sessions"]) == limit  # a full page, or it would be the last
        if between is not None:
            between(n)
        r = c.get("/sessions", params={**params, "limit": limit, "cursor": doc["next_cursor"]})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["offset"] is None and doc["next_offset"] is None  # a cursor's page has no row number
    raise AssertionError("the cursor never reached the last page")


@pytest.mark.parametrize("params", [{}, {"status": "running"}], ids=["all", "running"])
def test_every_unchanged_session_is_listed_once_while_others_become_active(server, params):
    """Between page requests, a session not listed yet becomes active (it moves to the top: with
    offset, every row it passed would shift down one and the page boundary's row come twice) and
    a listed one ends (it moves to the top, or leaves ``status=running``: with offset, the rows
    under it would shift up one and the boundary's row be skipped). Every session that did not
    change is listed exactly once, in the list's order."""
    names = [f"run-{i:02d}" for i in range(24)]
    sequence = Counter({n: 1 for n in names})
    with server.client() as c:
        for i in range(0, 12):  # twelve receive times
            post(c, [ev(names[i], 1, "session.started")])
        for i in range(12, 24, 4):  # and three batches of four sessions tied on one receive time
            post(c, [ev(n, 1, "session.started") for n in names[i : i + 4]])
        before = [s["id"] for s in c.get("/sessions", params={"limit": 1000}).json()["sessions"]]
        assert sorted(before) == names
        listed: list[str] = []
        changed: set[str] = set()

        def touch(sid: str, kind: str) -> None:
            sequence[sid] += 1
            post(c, [ev(sid, sequence[sid], kind, {"content": "active again"})])
            changed.add(sid)
            assert c.get("/sessions", params={"limit": 1}).json()["sessions"][0]["id"] == sid  # it moved up

        limit = 5
        doc = c.get("/sessions", params={**params, "limit": limit}).json()
        assert doc["offset"] == 0 and doc["next_offset"] == limit  # the offset form is still given
        while True:
            listed += [s["id"] for s in doc["sessions"]]
            if doc["next_cursor"] is None:
                break
            later = [sid for sid in before if sid not in listed and sid not in changed]
            if len(later) > limit:
                touch(later[-1], "cognition.thought")
            touch(next(sid for sid in listed if sid not in changed), "session.ended")
            r = c.get("/sessions", params={**params, "limit": limit, "cursor": doc["next_cursor"]})
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["offset"] is None and doc["next_offset"] is None  # a cursor's page has no row number
    assert len(changed) >= 6  # the scenario happened
    assert [sid for sid, n in Counter(listed).items() if n > 1] == []
    unchanged = [sid for sid in before if sid not in changed]
    assert [sid for sid in listed if sid not in changed] == unchanged  # each once, in the list's order


def test_sessions_tied_on_activity_page_without_loss_or_repeat(server):
    """Many sessions share each receive time (one batch, one time); pages of 1, 2 and 3 cut
    through the ties. The cursor holds the stored time exactly: a time rounded to the
    microsecond shown would differ from most stored ones and lose or repeat the rest of a tie."""
    with server.client() as c:
        for b in range(6):
            post(c, [ev(f"tie{b}-{sid}", 1, "session.started", agent="ties") for sid in IDS])
        whole = [s["id"] for s in c.get("/sessions", params={"agent": "ties", "limit": 1000}).json()["sessions"]]
        assert len(whole) == 6 * len(IDS)
        for limit in (1, 2, 3):
            assert walk(c, {"agent": "ties"}, limit) == whole, limit
        doc = c.get("/sessions", params={"agent": "ties", "limit": 4}).json()
    last = doc["sessions"][-1]["id"]
    with server.aw.engine.connect() as conn:
        stored = conn.execute(select(aop_sessions.c.last_seen_at).where(aop_sessions.c.id == last)).scalar_one()
    assert decode_cursor(doc["next_cursor"]) == (stored, last)  # the float as stored, bit for bit


@pytest.fixture(scope="module")
def icu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    urls = icu_database()
    url = next(urls)
    try:
        with run_server(open_settings(tmp_path_factory.mktemp("icu"), url)) as srv:
            yield srv
    finally:
        urls.close()


@pytest.mark.postgres
def test_cursor_compares_ids_by_code_point_under_a_linguistic_collation(icu_server: RunningServer):
    """The cursor's id is compared as the ORDER BY compares ids (code points), not by the
    database's collation, which orders "sess-a" before "Sess-b"."""
    with icu_server.client() as c:
        post(c, [ev(sid, 1, "session.started", agent="icu") for sid in IDS])  # one receive time
        whole = c.get("/sessions", params={"agent": "icu", "limit": 1000}).json()["sessions"]
        assert [s["id"] for s in whole] == code_point_order(whole, "last_seen_at", newest_first=True)
        assert walk(c, {"agent": "icu"}, 1) == [s["id"] for s in whole]


def test_filters_combine_with_the_cursor(shared_server):
    with shared_server.client() as c:
        post(c, [ev("flt-root", 1, "session.started", agent="flt-a")])
        for i in range(9):
            agent = "flt-a" if i % 2 else "flt-b"
            post(c, [ev(f"flt-{i}", 1, "session.started", agent=agent, parent="flt-root" if i % 3 else None)])
            if i % 4 == 0:
                post(c, [ev(f"flt-{i}", 2, "session.ended")])
        since = c.get("/sessions", params={"agent": "flt-a", "limit": 1000}).json()["sessions"][2]["last_seen_at"]
        for params in [
            {"agent": "flt-a"},
            {"agent": "flt-b", "status": "completed"},
            {"agent": "flt-b", "status": "running"},
            {"parent": "flt-root"},
            {"parent": "flt-root", "agent": "flt-a"},
            {"agent": "flt-a", "since": since},
        ]:
            whole = c.get("/sessions", params={**params, "limit": 1000}).json()
            ids = [s["id"] for s in whole["sessions"]]
            assert len(ids) >= 2 and whole["next_cursor"] is None, params
            assert walk(c, params, 1) == ids, params
            r = c.get("/sessions", params={**params, "limit": 1})
            assert r.json()["total"] == len(ids)
            page = c.get("/sessions", params={**params, "limit": 1, "cursor": r.json()["next_cursor"]}).json()
            assert page["total"] == len(ids)  # all that match the filters, as on the offset form


def test_offset_paging_answers_as_before_with_a_cursor_beside_it(shared_server):
    with shared_server.client() as c:
        for i in range(3):
            post(c, [ev(f"off-{i}", 1, "session.started", agent="off")])
        first = c.get("/sessions", params={"agent": "off", "limit": 2}).json()
        assert set(first) == {"sessions", "total", "limit", "offset", "next_offset", "next_cursor"}
        assert [s["id"] for s in first["sessions"]] == ["off-2", "off-1"]
        assert (first["total"], first["limit"], first["offset"], first["next_offset"]) == (3, 2, 0, 2)
        last = c.get("/sessions", params={"agent": "off", "limit": 2, "offset": 2}).json()
        assert [s["id"] for s in last["sessions"]] == ["off-0"]
        assert (last["offset"], last["next_offset"], last["next_cursor"]) == (2, None, None)
        # a cursor from an offset page pages on from its last row
        on = c.get("/sessions", params={"agent": "off", "limit": 2, "cursor": first["next_cursor"]}).json()
        assert [s["id"] for s in on["sessions"]] == ["off-0"] and on["next_cursor"] is None
        # exactly a page left: the page that holds it says there is no next one
        assert c.get("/sessions", params={"agent": "off", "limit": 3}).json()["next_cursor"] is None
        # a cursor past the last session: an empty page, not an error
        end = encode_cursor(-1.0, "zzz")
        assert c.get("/sessions", params={"agent": "off", "cursor": end}).json()["sessions"] == []


def test_a_bad_cursor_is_refused_naming_it(shared_server):
    good = encode_cursor(1_775_210_400.25, "sess-1")
    with shared_server.client() as c:
        assert c.get("/sessions", params={"cursor": good}).status_code == 200
        for cursor, rule in [
            ("", "must not be empty"),
            ("A" * (MAX_CURSOR + 1), f"longer than {MAX_CURSOR} characters"),
            ("not a cursor!", "must be base64url"),
            ("AUHa", "not a cursor given in next_cursor (too short)"),
            ("Ak" + good[2:], "not a cursor given in next_cursor (unknown layout)"),
            (good + "==", "not a cursor given in next_cursor (not in its canonical form)"),
            (encode_cursor(float("inf"), "s"), "not a cursor given in next_cursor (its time is not finite)"),
            (encode_cursor(float("nan"), "s"), "not a cursor given in next_cursor (its time is not finite)"),
            (encode_cursor(1.0, "s\x00"), "not a cursor given in next_cursor (its id must not contain control"),
            (encode_cursor(1.0, "x" * 129), "not a cursor given in next_cursor (its id longer than 128"),
            (b64(b"\x01" + bytes(8) + b"\xff"), "not a cursor given in next_cursor (its id is not UTF-8)"),
        ]:
            r = c.get("/sessions", params={"cursor": cursor})
            assert r.status_code == 400, (cursor, r.text)
            error = r.json()["error"]
            assert error["message"].startswith(f"cursor: {rule}"), (cursor, error)
            assert error["details"][0]["field"] == "cursor"
        for offset in (0, 5):
            r = c.get("/sessions", params={"cursor": good, "offset": offset})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["message"].startswith("cursor, offset: give one or the other, not both"), error
            assert [d["field"] for d in error["details"]] == ["cursor", "offset"]


def test_cursor_codec_keeps_the_exact_float_and_any_id():
    for seen, sid in [(1_775_210_400.1234567, "team/run-7"), (5e-324, "ä-x"), (-0.5, "😀" * 128), (1e300, "a b")]:
        text = encode_cursor(seen, sid)
        assert len(text) <= MAX_CURSOR and decode_cursor(text) == (seen, sid)
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
