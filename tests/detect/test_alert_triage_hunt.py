"""Defects found in alert triage (PATCH/assign/DELETE, merged repeats) and the explanation
cache, each pinned by the case that showed it, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from agentwatch.alerts import explanation_cache
from agentwatch.alerts.dedup_lock import lock_dedup_keys
from agentwatch.alerts.model import MAX_TAGS
from agentwatch.alerts.recorder import delete_dependents, store_findings
from agentwatch.config import Settings
from agentwatch.detect import queries
from agentwatch.detect.schema import alert_feedback
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store import kv
from agentwatch.store.alerts_schema import alerts
from tests.detect.helpers import wait_for, with_detection
from tests.detect.test_alert_workflow import one_alert
from tests.detect.test_explain import explaining_llm, llm_settings, make_alert, with_llm
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base, approved_models=["gpt-4o*"])) as s:
        yield s


# -- the assignee is printable text: no control character anywhere ---------------------------


@pytest.mark.parametrize(
    "assignee",
    [
        "\x00alice",  # a control character first or last was let through by the edge match
        "alice\x07",
        "\x01",
        "al\x85ice",  # C1 controls (NEL) are control characters too
        "al\x9bice",  # CSI: starts a terminal escape sequence in a log viewer
        "alice\u2028bob",  # a line separator breaks a log line like a newline
        "alice\u202egro.elpmaxe",  # a bidi override shows the name reversed
    ],
)
def test_an_assignee_with_a_control_character_anywhere_is_refused(srv, assignee):
    with srv.client() as c:
        alert = one_alert(c, "m-hunt-ctl")
        url = f"/api/v1/alerts/{alert['id']}"
        for r in (c.patch(url, json={"assignee": assignee}), c.post(f"{url}/assign", json={"assignee": assignee})):
            assert r.status_code == 400, r.text
            message = r.json()["error"]["message"]
            assert message.startswith("assignee:") and "control characters" in message, message
        assert c.get(url).json()["assignee"] is None


@pytest.mark.parametrize("assignee", ["Zoë Ångström", "李雷", "user:3f2a", "a", "bob (SOC, tier 2)", "Jean\xa0Dupont"])
def test_printable_assignees_are_taken_as_given(srv, assignee):
    with srv.client() as c:
        alert = one_alert(c, "m-hunt-ok")
        r = c.patch(f"/api/v1/alerts/{alert['id']}", json={"assignee": assignee})
        assert r.status_code == 200 and r.json()["assignee"] == assignee, r.text
        found = c.get("/api/v1/alerts", params={"assignee": assignee}).json()["alerts"]
        assert [a["id"] for a in found] == [alert["id"]]


# -- a rule's own tags are all kept: the cap bounds what repeats add ---------------------------


def _finding(i: int, tags: list[str]) -> Finding:
    ent = {"type": "host", "value": f"h{i}", "id": entity_id("host", f"h{i}")}
    event = Event(body={}, event_id=f"e{i}", event_type="ai.request", ts=1000.0 + i, received_at=1000.0, entities=[ent])
    return Finding("sigma", "rule-many-tags", "Tagged", 5, [event], alert_type="sigma", tags=tags, dedup_key="k")


def test_a_rule_with_more_tags_than_the_cap_is_found_by_its_last_technique_and_tactic(engine):
    # a Sigma rule may carry many tags (CVEs, cars, detection notes) before its ATT&CK ones
    tags = [f"cve.2024-{n:04d}" for n in range(MAX_TAGS)] + ["attack.t1059.001", "attack.execution"]
    ((alert, is_new),) = store_findings(engine, [_finding(0, tags)], 300)
    assert is_new and alert["tags"] == tags
    for q in (queries.AlertQuery(technique="T1059"), queries.AlertQuery(tactic="Execution")):
        assert [a["id"] for a in queries.list_alerts(engine, q)[0]] == [alert["id"]]
    # a repeat adds nothing once the alert holds the cap, and takes nothing away
    ((again, _),) = store_findings(engine, [_finding(1, [*tags, "attack.t1105"])], 300)
    assert again["count"] == 2 and again["tags"] == tags
    assert queries.list_alerts(engine, queries.AlertQuery(technique="T1059"))[0][0]["tags"] == tags


# -- deleting the dependents of many alerts at once (a session with a flood of alerts) ---------


def test_the_dependents_of_more_alerts_than_a_statement_takes_parameters_are_deleted(engine):
    ids = [str(uuid.uuid4()) for _ in range(70_000)]  # SQLite takes 32,766 parameters, PostgreSQL 65,535
    kept = str(uuid.uuid4())
    with engine.begin() as conn:
        for aid in (ids[0], ids[-1], kept):
            conn.execute(
                alert_feedback.insert().values(
                    id=str(uuid.uuid4()), alert_id=aid, feedback="fp", note="", origin="t", principal="", created_at=1.0
                )
            )
    for aid in (ids[0], ids[-1], kept):
        kv.put(engine, explanation_cache.cache_key(aid), {"explanation": "x"})
    with engine.begin() as conn:
        assert delete_dependents(conn, ids) == 2
    with engine.connect() as conn:
        assert [r.alert_id for r in conn.execute(select(alert_feedback.c.alert_id))] == [kept]
    assert [kv.get(engine, explanation_cache.cache_key(a)) for a in (ids[0], ids[-1])] == [None, None]
    assert kv.get(engine, explanation_cache.cache_key(kept)) == {"explanation": "x"}


# -- a deletion is not undone by a request that read the alert just before it ------------------


def test_feedback_given_while_the_alert_is_being_deleted_is_not_left_behind(srv):
    engine = srv.aw.engine
    with srv.client() as c:
        alert = one_alert(c, "m-hunt-fb-race")
    aid = alert["id"]
    verdict: list[bool] = []
    with engine.begin() as conn:  # DELETE /api/v1/alerts/{id}, between its lock and its commit
        lock_dedup_keys(conn, [conn.execute(select(alerts.c.dedup_key).where(alerts.c.id == aid)).scalar_one()])
        delete_dependents(conn, [aid])
        conn.execute(delete(alerts).where(alerts.c.id == aid))
        late = threading.Thread(target=lambda: verdict.append(queries.add_feedback(engine, aid, "tp", "", "t", "")))
        late.start()
        late.join(1.0)  # it waits for the deletion (or, unguarded, has already written its row)
    late.join(10)
    assert verdict == [False]  # the alert is gone: 404, as for any unknown alert
    with engine.connect() as conn:
        assert conn.execute(select(alert_feedback.c.id).where(alert_feedback.c.alert_id == aid)).all() == []


def test_an_explanation_finished_after_its_alert_was_deleted_is_not_kept(module_database_url, tmp_path):
    base = Settings(data_dir=tmp_path, database_url=module_database_url, auth={"enabled": False})
    with explaining_llm() as fake, run_server(with_llm(base, llm_settings(fake, timeout_s=10.0))) as s, s.client() as c:
        aid = make_alert(c)
        fake.delay_s = 1.0
        answers: list[Any] = []
        asking = threading.Thread(target=lambda: answers.append(c.post(f"/api/v1/alerts/{aid}/explain")))
        asking.start()
        wait_for(lambda: fake.got)  # the backend is working on it
        assert c.delete(f"/api/v1/alerts/{aid}").status_code == 204
        asking.join(15)
        (r,) = answers
        assert r.status_code == 404 and r.json()["error"]["details"] == {"alert_id": aid}, r.text
        assert kv.get(s.aw.engine, explanation_cache.cache_key(aid)) is None


def test_a_triage_change_keeps_the_explanation(module_database_url, tmp_path):
    """What the model read is the alert without its triage: a PATCH or an assignment leaves the
    fingerprint as it was (a repeat does not: tests/detect/test_explain.py)."""
    base = Settings(data_dir=tmp_path, database_url=module_database_url, auth={"enabled": False})
    with explaining_llm() as fake, run_server(with_llm(base, llm_settings(fake))) as s, s.client() as c:
        aid = make_alert(c)
        made = c.post(f"/api/v1/alerts/{aid}/explain").json()
        patched = c.patch(f"/api/v1/alerts/{aid}", json={"status": "acknowledged", "assignee": "erin"})
        assert patched.status_code == 200
        assert c.post(f"/api/v1/alerts/{aid}/assign", json={"assignee": "frank"}).status_code == 200
        assert c.get(f"/api/v1/alerts/{aid}/explanation").json() == {**made, "cached": True}
        assert c.post(f"/api/v1/alerts/{aid}/explain").json() == {**made, "cached": True}
        assert len(fake.got) == 1


@pytest.mark.parametrize("asked", ["Privilege Escalation", "privilege-escalation", "privilege_escalation"])
def test_a_multi_word_tactic_finds_alerts_in_either_spelling_rules_use(engine, asked):
    # SigmaHQ writes attack.privilege-escalation, the rule pack and ATR attack.privilege_escalation
    hyphen = store_findings(engine, [_finding(10, ["attack.privilege-escalation", "attack.t1548"])], 300)[0][0]
    other = Finding("atr", "rule-underscore", "Tagged", 5, _finding(11, []).events, alert_type="atr", dedup_key="u")
    other.tags = ["attack.privilege_escalation"]
    underscore = store_findings(engine, [other], 300)[0][0]
    found = {a["id"] for a in queries.list_alerts(engine, queries.AlertQuery(tactic=asked))[0]}
    assert found == {hyphen["id"], underscore["id"]}
