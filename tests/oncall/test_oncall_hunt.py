"""Defects and edge cases found by attacking the on-call routes (real server, SQLite and
PostgreSQL). Every expected schedule is worked out by hand in the test's comment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.server import RunningServer, open_settings, run_server

ROT = "/api/v1/oncall/rotations"
WHO = "/api/v1/oncall/whoison"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(settings.model_copy(update={"sla": settings.sla.model_copy(update={"enabled": False})})) as s:
        yield s


def create(c: Any, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"r-{uuid.uuid4().hex[:8]}")
    r = c.post(ROT, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def who(c: Any, rotation: str, at: str) -> dict[str, Any]:
    r = c.get(WHO, params={"rotation": rotation, "at": at})
    assert r.status_code == 200, r.text
    (doc,) = r.json()["whoison"]
    return doc


def test_a_name_shaped_like_a_rotation_id_is_refused(srv: RunningServer) -> None:
    # whoison?rotation= takes an id or a name: a rotation named with another one's id would
    # answer for that id too, so the on-call of the real one could be shadowed by a fake one
    with srv.client() as c:
        real = create(c, members=["alice"], shift_hours=24, start="2026-01-01T00:00:00Z")
        r = c.post(
            ROT, json={"name": real["id"], "members": ["mallory"], "shift_hours": 24, "start": "2026-01-01T00:00:00Z"}
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("name:")
        other = create(c, members=["bob"], shift_hours=24, start="2026-01-01T00:00:00Z")
        body = {"name": real["id"].upper(), "members": ["mallory"], "shift_hours": 24, "start": "2026-01-01T00:00:00Z"}
        assert c.put(f"{ROT}/{other['id']}", json=body).status_code == 400
        docs = c.get(WHO, params={"rotation": real["id"], "at": "2026-01-02T00:00:00Z"}).json()["whoison"]
        assert [d["on_call"]["member"] for d in docs] == ["alice"]


def test_shifts_count_the_leap_day(srv: RunningServer) -> None:
    # 24 h shifts from 2024-02-28T00:00Z: a on the 28th, b on the 29th, c on March 1st
    with srv.client() as c:
        rot = create(c, members=["a", "b", "c"], shift_hours=24, start="2024-02-28T00:00:00Z")
        doc = who(c, rot["id"], "2024-03-01T12:00:00Z")
        assert doc["on_call"] == {
            "member": "c",
            "since": "2024-03-01T00:00:00Z",
            "until": "2024-03-02T00:00:00Z",
            "override": False,
        }
        assert doc["next"]["member"] == "a"


def test_an_override_across_a_handoff_cuts_both_shifts(srv: RunningServer) -> None:
    # 12 h shifts from 2026-01-05T00:00Z: a 00-12, b 12-24; x stands in 10:00-14:00
    with srv.client() as c:
        rot = create(
            c,
            members=["a", "b"],
            shift_hours=12,
            start="2026-01-05T00:00:00Z",
            overrides=[{"member": "x", "from": "2026-01-05T10:00:00Z", "until": "2026-01-05T14:00:00Z"}],
        )
        before = who(c, rot["id"], "2026-01-05T09:00:00Z")
        assert (before["on_call"]["member"], before["on_call"]["until"]) == ("a", "2026-01-05T10:00:00Z")
        assert before["next"]["member"] == "x"
        inside = who(c, rot["id"], "2026-01-05T13:00:00Z")
        assert inside["on_call"]["override"] is True and inside["on_call"]["member"] == "x"
        assert inside["next"] == {
            "member": "b",
            "since": "2026-01-05T14:00:00Z",
            "until": "2026-01-06T00:00:00Z",
            "override": False,
        }
