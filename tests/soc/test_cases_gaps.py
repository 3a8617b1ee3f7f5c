"""Gaps closed in the cases API, each pinned on SQLite and PostgreSQL: a deleted alert leaves a
mark on the cases that linked it, an unknown case is 404 before its body's alerts are checked,
the list's ``unassigned`` filter and assignees in composed Unicode form, and a list page and its
``total`` read from one snapshot."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from agentwatch.alerts import recorder
from agentwatch.alerts.recorder import delete_dependents, store_findings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.sessions.queries import delete_sessions
from agentwatch.soc.cases import deleted_alerts, store
from agentwatch.soc.cases.schema import case_alerts, case_timeline
from tests.soc.helpers import MISSING, create, make_alert

_serial = itertools.count()


def session_alert(engine: Any, session_id: str) -> str:
    """A real stored alert of ``session_id`` (so deleting the session deletes it)."""
    n = next(_serial)
    ent = {"type": "host", "value": f"g{n}", "id": entity_id("host", f"g{n}")}
    event_ = Event(
        body={}, event_id=f"gap-e{n}", event_type="ai.request", ts=2000.0 + n, received_at=2000.0, entities=[ent]
    )
    finding = Finding(
        "atr", f"gap-rule-{n}", f"Gap {n}", 5, [event_], alert_type="atr", dedup_key=f"gap-{n}", session_id=session_id
    )
    ((alert, _new),) = store_findings(engine, [finding], 300)
    return alert["id"]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def new_case(engine: Any, alert_ids: list[str], **values: Any) -> str:
    return store.create_case(
        engine, {"title": "t", "severity": 5, "status": "open", "alert_ids": alert_ids, **values}, "user:u"
    )


def removal_entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["timeline"] if e["author"] == deleted_alerts.AUTHOR]


# -- 1. a deleted alert is recorded on the cases that linked it -----------------------------------


def test_deleting_an_alert_moves_each_linking_case_and_adds_one_entry(srv):
    gone, kept = make_alert(srv.aw.engine), make_alert(srv.aw.engine)
    with srv.client() as c:
        both = create(c, alert_ids=[gone, kept])
        only = create(c, alert_ids=[gone])
        apart = create(c, alert_ids=[kept])
        time.sleep(0.01)  # the new updated_at must be told apart from the old one
        assert c.delete(f"/api/v1/alerts/{gone}").status_code == 204
        for before in (both, only):
            doc = c.get(f"/api/v1/cases/{before['id']}").json()
            assert when(doc["updated_at"]) > when(before["updated_at"])
            assert doc["timeline_total"] == before["timeline_total"] + 1
            (entry,) = removal_entries(doc)
            assert entry == doc["timeline"][-1]
            assert (entry["kind"], entry["fields"], entry["author"]) == (
                "change",
                ["alert_ids"],
                "system:alert-deletion",
            )
            assert gone in entry["title"] and "deleted" in entry["title"]
            assert entry["description"] == gone
            assert entry["ts"] == entry["created_at"] == doc["updated_at"]
            listed = c.get("/api/v1/cases", params={"limit": 1000}).json()["cases"]
            assert [x["updated_at"] for x in listed if x["id"] == doc["id"]] == [doc["updated_at"]]
        assert c.get(f"/api/v1/cases/{both['id']}").json()["alert_ids"] == [kept]
        assert c.get(f"/api/v1/cases/{apart['id']}").json() == apart  # not linked: untouched


def test_deleting_a_session_adds_one_entry_per_case_naming_its_alerts(engine):
    s1, s2, s3 = (session_alert(engine, "gap-session") for _ in range(3))
    other = make_alert(engine)
    case_id = new_case(engine, [s3, other, s1, s2])
    before = store.get_case(engine, case_id)
    time.sleep(0.01)
    with engine.begin() as conn:
        assert delete_sessions(conn, ["gap-session"])["alerts"] == 3
    doc = store.get_case(engine, case_id)
    assert doc["alert_ids"] == [other]
    assert when(doc["updated_at"]) > when(before["updated_at"])
    (entry,) = removal_entries(doc)
    assert entry["title"] == "3 alerts removed: the alerts were deleted"
    assert entry["description"].split("\n") == [s3, s1, s2]  # in the case's order


def test_one_entry_per_case_even_when_the_ids_span_chunks(engine, monkeypatch):
    monkeypatch.setattr(recorder, "DEPENDENTS_CHUNK", 2)
    ids = [make_alert(engine) for _ in range(5)]
    first, second = new_case(engine, ids), new_case(engine, ids[3:])
    with engine.begin() as conn:
        delete_dependents(conn, ids)
    for case_id, count in ((first, 5), (second, 2)):
        doc = store.get_case(engine, case_id)
        (entry,) = removal_entries(doc)
        assert doc["alert_ids"] == [] and entry["title"] == f"{count} alerts removed: the alerts were deleted"


def test_the_entry_goes_with_the_deletion_when_it_rolls_back(engine):
    alert = make_alert(engine)
    case_id = new_case(engine, [alert])
    before = store.get_case(engine, case_id)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        delete_dependents(conn, [alert])
        raise RuntimeError("the caller's deletion failed")
    assert store.get_case(engine, case_id) == before


def test_the_entry_lists_at_most_the_text_limit_of_ids(engine):
    # ids of alerts that were never stored: the links exist, which is all unlinking looks at
    ids = [f"gap-{i:04d}-{'x' * 50}" for i in range(400)]  # 60 characters each
    case_id = new_case(engine, [])
    with engine.begin() as conn:
        conn.execute(
            insert(case_alerts), [{"case_id": case_id, "alert_id": a, "position": i} for i, a in enumerate(ids)]
        )
        delete_dependents(conn, ids)
    (entry,) = removal_entries(store.get_case(engine, case_id))
    assert len(entry["description"]) <= 10_000
    lines = entry["description"].split("\n")
    shown = lines[:-1]
    assert shown == ids[: len(shown)] and lines[-1] == f"and {400 - len(shown)} more"


def test_a_case_at_its_timeline_cap_still_records_the_deletion(srv):
    alert = make_alert(srv.aw.engine)
    with srv.client() as c:
        case = create(c, alert_ids=[alert])
        now = time.time()
        notes = [
            {"id": str(uuid.uuid4()), "case_id": case["id"], "ts": now, "kind": "note", "title": "n"}
            | {"description": "", "fields": "[]", "author": "x", "created_at": now}
            for _ in range(store.MAX_ENTRIES)
        ]
        with srv.aw.engine.begin() as conn:
            conn.execute(insert(case_timeline), notes)
        url = f"/api/v1/cases/{case['id']}"
        assert c.post(f"{url}/timeline", json={"title": "one too many"}).status_code == 409
        assert c.delete(f"/api/v1/alerts/{alert}").status_code == 204  # never refused for the cap
        doc = c.get(url).json()
        assert doc["timeline_total"] == store.MAX_ENTRIES + 2  # "Case created", the notes, the removal
        assert len(removal_entries(doc)) == 1 and doc["alert_ids"] == []
        assert c.post(f"{url}/timeline", json={"title": "still full"}).status_code == 409
    with srv.aw.engine.connect() as conn:
        assert conn.execute(select(case_alerts).where(case_alerts.c.case_id == case["id"])).all() == []


# -- 2. PATCH on an unknown case is 404, whatever its body names ----------------------------------


def test_patch_of_an_unknown_case_naming_unknown_alerts_is_404(srv):
    with srv.client() as c:
        r = c.patch(f"/api/v1/cases/{MISSING}", json={"alert_ids": ["no-such-alert"], "status": "closed"})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["details"] == {"case_id": MISSING}
        known = create(c)  # a known case still refuses unknown alerts
        r = c.patch(f"/api/v1/cases/{known['id']}", json={"alert_ids": ["no-such-alert"]})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("alert_ids: no such alert")


# -- 3. unassigned cases, assignees in composed form ----------------------------------------------


def test_the_unassigned_filter(srv):
    with srv.client() as c:
        tag = uuid.uuid4().hex[:8]
        nobody = create(c, severity=9, title=tag)
        create(c, severity=9, assignee=f"gap-{tag}")

        def page(**params: Any) -> dict[str, Any]:
            r = c.get("/api/v1/cases", params={"limit": 1000, **params})
            assert r.status_code == 200, r.text
            return r.json()

        hits = page(unassigned="true")
        assert hits["cases"] and all(x["assignee"] is None for x in hits["cases"])
        assert nobody["id"] in [x["id"] for x in hits["cases"]] and hits["meta"]["total"] == len(hits["cases"])
        everything = page()
        assert page(unassigned="false")["meta"]["total"] == everything["meta"]["total"] > hits["meta"]["total"]


@pytest.mark.parametrize(
    ("params", "field", "rule"),
    [
        ({"unassigned": "true", "assignee": "bob"}, "unassigned", "not both unassigned and assignee"),
        ({"unassigned": "false", "assignee": "bob"}, "unassigned", "not both unassigned and assignee"),
        ({"unassigned": "maybe"}, "unassigned", "boolean"),
        ({"assignee": "bob\u2028"}, "assignee", "control characters"),
        ({"assignee": " bob"}, "assignee", "surrounding blanks"),
    ],
)
def test_bad_assignee_filters_name_the_parameter(srv, params, field, rule):
    with srv.client() as c:
        r = c.get("/api/v1/cases", params=params)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{field}:") and rule in message, message


def test_assignees_are_stored_and_matched_in_composed_form(srv):
    composed, decomposed = "Jos\u00e9 Gap", "Jose\u0301 Gap"
    with srv.client() as c:
        case = create(c, assignee=decomposed)
        assert case["assignee"] == composed
        other = create(c)
        patched = c.patch(f"/api/v1/cases/{other['id']}", json={"assignee": decomposed}).json()
        assert patched["assignee"] == composed
        for spelling in (composed, decomposed):
            listed = c.get("/api/v1/cases", params={"assignee": spelling}).json()
            assert sorted(x["id"] for x in listed["cases"]) == sorted([case["id"], other["id"]])
        # a value equal to the current one once composed is no change
        same = c.patch(f"/api/v1/cases/{case['id']}", json={"assignee": composed}).json()
        assert same["timeline"] == case["timeline"]


def test_an_assignee_longer_than_the_limit_once_composed_is_refused(srv):
    # U+0958 composes to two code points (a composition exclusion): 100 of them become 200
    too_long = "\u0958" * 100
    with srv.client() as c:
        made = c.post("/api/v1/cases", json={"title": "t", "assignee": too_long})
        case = create(c)
        patched = c.patch(f"/api/v1/cases/{case['id']}", json={"assignee": too_long})
        for r in (made, patched):
            assert r.status_code == 400, r.text
            message = r.json()["error"]["message"]
            assert message.startswith("assignee:") and "128" in message, message


# -- 4. a page and its total from one snapshot ----------------------------------------------------


def test_a_case_created_between_the_page_and_the_count_is_in_neither(engine):
    """Deterministic: a case is committed on another connection right after the page is read."""
    new_case(engine, [])
    done: list[str] = []

    def insert_after_the_page(conn, _cursor, statement, *_rest):  # noqa: ANN001
        if not done and statement.lstrip().upper().startswith("SELECT CASES.ID") and "LIMIT" in statement.upper():
            done.append(new_case(engine, []))

    event.listen(engine, "after_cursor_execute", insert_after_the_page)
    try:
        rows, total, _next = store.list_cases(engine, store.CaseQuery(limit=1000))
    finally:
        event.remove(engine, "after_cursor_execute", insert_after_the_page)
    assert done, "the hook did not run"
    assert len(rows) == total == 1
    assert store.list_cases(engine, store.CaseQuery(limit=1000))[1] == 2


def test_page_and_total_agree_under_concurrent_inserts(engine):
    stop = threading.Event()

    def keep_inserting() -> None:
        for _ in range(600):  # fewer than a page holds: every page is the whole list
            if stop.is_set():
                return
            new_case(engine, [])

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        for _ in range(150):
            rows, total, nxt = store.list_cases(engine, store.CaseQuery(limit=1000))
            assert nxt is None and len(rows) == total
    finally:
        stop.set()
        writer.join()
