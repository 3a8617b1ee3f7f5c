"""Defect hunt on the AiSOC rule catalogue: a rule change made through one node racing a change
made through another (held open here in a second store transaction, as the other node's
request would hold it), and a node that loaded its rules just before another node changed one.

Every race is made deterministic: the other node's change is written but left uncommitted,
the request under test runs until it waits on that write, then the change commits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Connection, delete, insert, select, update

from agentwatch.detect.engine import DetectionEngine
from agentwatch.detect.rule_sync import RuleSync, bump_in
from agentwatch.detect.schema import detect_rules
from tests.detect.test_aisoc_rules import rule_yaml
from tests.support.server import RunningServer

WAIT_S = 1.0  # long enough for the request to reach the write the held transaction blocks


def new_id() -> str:
    return str(uuid.uuid4())


@contextmanager
def held(srv: RunningServer, change: Callable[[Connection], None]) -> Iterator[None]:
    """``change`` written in a transaction that commits only when the block ends."""
    with srv.aw.engine.connect() as conn:
        tx = conn.begin()
        change(conn)
        try:
            yield
        finally:
            tx.commit()


class Racing:
    """One request sent on its own thread (and its own client) while the test holds a write."""

    def __init__(self, srv: RunningServer, method: str, path: str, **kw: Any) -> None:
        self.response: httpx.Response | None = None

        def go() -> None:
            with srv.client() as c:
                self.response = c.request(method, path, timeout=60, **kw)

        self.thread = threading.Thread(target=go)
        self.thread.start()
        time.sleep(WAIT_S)

    def result(self) -> httpx.Response:
        self.thread.join(60)
        assert self.response is not None
        return self.response


def stored_ids(srv: RunningServer, *ids: str) -> set[str]:
    with srv.aw.engine.connect() as conn:
        rows = conn.execute(select(detect_rules.c.rule_id).where(detect_rules.c.rule_id.in_(ids))).scalars()
        return set(rows)


def test_a_disable_committed_while_a_replace_runs_is_kept(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_flag")}).status_code == 201

        def disable(conn: Connection) -> None:  # another node's POST /disable, not yet committed
            conn.execute(update(detect_rules).where(detect_rules.c.rule_id == rid).values(enabled=False))

        with held(srv, disable):
            put = Racing(srv, "PUT", f"/api/v1/rules/{rid}", json={"yaml": rule_yaml(rid, "hunt_flag", "New title")})
        assert put.result().status_code == 200, put.result().text
        # the replace kept the rule's flag as the store held it when the replace wrote: disabled
        assert c.get(f"/api/v1/rules/{rid}").json()["enabled"] is False
        assert c.get(f"/api/v1/sigma/rules/{rid}").json()["enabled"] is False


def test_a_rule_deleted_while_a_replace_waits_stays_deleted(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_gone")}).status_code == 201

        def remove(conn: Connection) -> None:  # another node's DELETE, not yet committed
            conn.execute(delete(detect_rules).where(detect_rules.c.rule_id == rid))
            bump_in(conn)

        with held(srv, remove):
            put = Racing(srv, "PUT", f"/api/v1/rules/{rid}", json={"yaml": rule_yaml(rid, "hunt_gone", "Back?")})
        assert put.result().status_code == 404, put.result().text
        assert stored_ids(srv, rid) == set()
        assert c.get(f"/api/v1/rules/{rid}").status_code == 404
        assert c.get(f"/api/v1/sigma/rules/{rid}").status_code == 404


def test_a_delete_racing_a_replace_that_adds_a_rule_leaves_the_file_whole(srv):
    rid, added = new_id(), new_id()
    pair = rule_yaml(rid, "hunt_pair_a") + "---\n" + rule_yaml(added, "hunt_pair_b", "Added")
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_pair_a")}).status_code == 201

        def replace(conn: Connection) -> None:  # another node's PUT that adds a rule to the file
            row = conn.execute(select(detect_rules).where(detect_rules.c.rule_id == rid)).one()
            conn.execute(delete(detect_rules).where(detect_rules.c.rule_id == rid))
            values = {**row._mapping, "yaml": pair}
            conn.execute(insert(detect_rules), [values, {**values, "rule_id": added, "title": "Added"}])
            bump_in(conn)

        with held(srv, replace):
            gone = Racing(srv, "DELETE", f"/api/v1/rules/{rid}")
        # the delete sees the file as the other node left it: one rule of a two-rule file is refused
        assert gone.result().status_code == 409, gone.result().text
        assert added in gone.result().json()["error"]["message"]
        assert stored_ids(srv, rid, added) == {rid, added}  # no half file (a rule loaded from a row not its own)
        assert c.get(f"/api/v1/rules/{added}").json()["yaml"] == pair
        assert c.delete(f"/api/v1/rules/{rid}").status_code == 409


def test_a_flag_set_on_a_rule_deleted_meanwhile_leaves_no_ghost(srv):
    rid = new_id()
    text = rule_yaml(rid, "hunt_ghost")
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": text}).status_code == 201

        def remove(conn: Connection) -> None:
            conn.execute(delete(detect_rules).where(detect_rules.c.rule_id == rid))
            bump_in(conn)

        with held(srv, remove):
            off = Racing(srv, "POST", f"/api/v1/rules/{rid}/disable")
        assert off.result().status_code == 404, off.result().text
        assert stored_ids(srv, rid) == set()  # no flag row left for a rule that is gone
        # so the id is free for a new upload on either face
        assert c.post("/api/v1/rules", json={"yaml": text}).status_code == 201
        assert c.get(f"/api/v1/sigma/rules/{rid}").json()["enabled"] is True


def test_a_node_loaded_just_before_another_node_replaced_a_rule_follows(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_late", "Old title")}).status_code == 201
        other = DetectionEngine(srv.aw.settings.detection, db=srv.aw.engine)  # a second node, started now
        other.ensure_loaded()
        assert other.infos[rid].title == "Old title"
        put = c.put(f"/api/v1/rules/{rid}", json={"yaml": rule_yaml(rid, "hunt_late", "New title")})
        assert put.status_code == 200, put.text
    RuleSync(other).sync()  # that node's first comparison
    assert other.infos[rid].title == "New title"


def test_an_idle_comparison_reads_one_row_and_still_sees_each_change(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_idle")}).status_code == 201
        other = DetectionEngine(srv.aw.settings.detection, db=srv.aw.engine)
        other.ensure_loaded()
        sync = RuleSync(other)
        sync.sync()
        sync.sync()  # nothing changed: the fingerprint says so
        assert sync.skipped == 1
        assert c.post(f"/api/v1/rules/{rid}/disable").status_code == 200
        sync.sync()
        assert rid in other.disabled and other.infos[rid].enabled is False and sync.skipped == 1
        assert c.post(f"/api/v1/rules/{rid}/enable").status_code == 200
        sync.sync()
        assert rid not in other.disabled and sync.skipped == 1
        assert c.post("/api/v1/rules/AW-TOOL-003/disable").status_code == 200  # a bundled rule's flag row
        sync.sync()
        assert "AW-TOOL-003" in other.disabled
        assert c.post("/api/v1/rules/AW-TOOL-003/enable").status_code == 200
        sync.sync()
        assert "AW-TOOL-003" not in other.disabled
        other.reload()  # a reload on that node (an upload through it): compared in full again
        sync.sync()
        assert sync.skipped == 1
        sync.sync()
        assert sync.skipped == 2


def test_a_rule_created_disabled_is_never_stored_enabled(srv):
    rid = new_id()
    states: list[bool] = []
    done = threading.Event()

    def watch() -> None:  # what another node's comparison would read, as often as it can
        with srv.aw.engine.connect() as conn:
            while not done.is_set():
                found = conn.execute(select(detect_rules.c.enabled).where(detect_rules.c.rule_id == rid)).scalar()
                conn.rollback()
                if found is not None:
                    states.append(bool(found))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with srv.client() as c:
            made = c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_born_off"), "enabled": False})
            assert made.status_code == 201, made.text
            assert made.json()["rules"][0]["enabled"] is False
            time.sleep(0.2)
    finally:
        done.set()
        watcher.join(10)
    assert states and set(states) == {False}, f"stored enabled {states.count(True)} times of {len(states)} reads"


def test_a_flag_set_while_another_node_replaces_the_rule_lands_on_the_new_row(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_keep")}).status_code == 201

        def replace(conn: Connection) -> None:  # another node's PUT keeping the rule, not yet committed
            row = conn.execute(select(detect_rules).where(detect_rules.c.rule_id == rid)).one()
            conn.execute(delete(detect_rules).where(detect_rules.c.rule_id == rid))
            text = rule_yaml(rid, "hunt_keep", "Kept title")
            conn.execute(insert(detect_rules), [{**row._mapping, "yaml": text, "title": "Kept title"}])
            bump_in(conn)

        with held(srv, replace):
            off = Racing(srv, "POST", f"/api/v1/rules/{rid}/disable")
        assert off.result().status_code == 200, off.result().text
        with srv.aw.engine.connect() as conn:
            assert conn.execute(select(detect_rules.c.enabled).where(detect_rules.c.rule_id == rid)).scalar() is False
        doc = c.get(f"/api/v1/rules/{rid}").json()
        assert doc["title"] == "Kept title" and doc["enabled"] is False


def test_a_replace_waiting_on_another_nodes_replace_applies_after_it(srv):
    rid = new_id()
    with srv.client() as c:
        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(rid, "hunt_twice")}).status_code == 201

        def replace(conn: Connection) -> None:  # another node's PUT of the same rule, not yet committed
            row = conn.execute(select(detect_rules).where(detect_rules.c.rule_id == rid)).one()
            conn.execute(delete(detect_rules).where(detect_rules.c.rule_id == rid))
            text = rule_yaml(rid, "hunt_twice", "First")
            conn.execute(insert(detect_rules), [{**row._mapping, "yaml": text, "title": "First"}])
            bump_in(conn)

        second = rule_yaml(rid, "hunt_twice", "Second")
        with held(srv, replace):
            put = Racing(srv, "PUT", f"/api/v1/rules/{rid}", json={"yaml": second})
        assert put.result().status_code == 200, put.result().text  # the later write wins, as in sequence
        assert c.get(f"/api/v1/rules/{rid}").json()["yaml"] == second
        assert c.get(f"/api/v1/sigma/rules/{rid}").json()["title"] == "Second"
