"""``/api/v1/oncall``: rotations stored and answered on a real server, on SQLite and PostgreSQL.

The schedule used throughout, worked out by hand: shifts of 12 h from 2026-01-05T09:00Z held by
alice, bob, carol in turn (alice 09:00-21:00 on the 5th, bob 21:00-09:00, carol 09:00-21:00 on
the 6th, alice again 21:00 on the 6th to 09:00 on the 7th, ...), dave standing in from
2026-01-06T00:00Z to 06:00Z (inside bob's first shift) and erin from 2026-01-04T00:00Z to 12:00Z
(before the rotation starts).
"""

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


def rotation(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"primary-{uuid.uuid4().hex[:8]}",
        "members": ["alice@example.com", "bob", "carol"],
        "shift_hours": 12,
        "start": "2026-01-05T09:00:00Z",
        "overrides": [
            {"member": "dave", "from": "2026-01-06T00:00:00Z", "until": "2026-01-06T06:00:00Z"},
            {"member": "erin", "from": "2026-01-04T00:00:00Z", "until": "2026-01-04T12:00:00Z"},
        ],
    }
    body.update(over)
    return body


def create(c: Any, **over: Any) -> dict[str, Any]:
    r = c.post(ROT, json=rotation(**over))
    assert r.status_code == 201, r.text
    return r.json()


def who(c: Any, rot: dict[str, Any], at: str) -> dict[str, Any]:
    r = c.get(WHO, params={"rotation": rot["id"], "at": at})
    assert r.status_code == 200, r.text
    (doc,) = r.json()["whoison"]
    assert doc["rotation_id"] == rot["id"]
    return doc


def seg(member: str, since: str | None, until: str, override: bool = False) -> dict[str, Any]:
    return {"member": member, "since": since, "until": until, "override": override}


CASES = [
    # at, on call, next
    (
        "2026-01-05T09:00:00Z",
        seg("alice@example.com", "2026-01-05T09:00:00Z", "2026-01-05T21:00:00Z"),
        seg("bob", "2026-01-05T21:00:00Z", "2026-01-06T00:00:00Z"),  # dave cuts bob's shift
    ),
    (
        "2026-01-05T20:59:59.999999Z",  # the last microsecond of alice's shift
        seg("alice@example.com", "2026-01-05T09:00:00Z", "2026-01-05T21:00:00Z"),
        seg("bob", "2026-01-05T21:00:00Z", "2026-01-06T00:00:00Z"),
    ),
    (
        "2026-01-05T22:00:00Z",
        seg("bob", "2026-01-05T21:00:00Z", "2026-01-06T00:00:00Z"),
        seg("dave", "2026-01-06T00:00:00Z", "2026-01-06T06:00:00Z", True),
    ),
    (
        "2026-01-06T03:00:00Z",
        seg("dave", "2026-01-06T00:00:00Z", "2026-01-06T06:00:00Z", True),
        seg("bob", "2026-01-06T06:00:00Z", "2026-01-06T09:00:00Z"),  # the rest of bob's shift
    ),
    (
        "2026-01-06T07:00:00Z",
        seg("bob", "2026-01-06T06:00:00Z", "2026-01-06T09:00:00Z"),
        seg("carol", "2026-01-06T09:00:00Z", "2026-01-06T21:00:00Z"),
    ),
    (
        "2026-01-06T22:30:00Z",  # 37.5 h after the start: shift 3, alice again
        seg("alice@example.com", "2026-01-06T21:00:00Z", "2026-01-07T09:00:00Z"),
        seg("bob", "2026-01-07T09:00:00Z", "2026-01-07T21:00:00Z"),
    ),
    (
        "2026-04-05T09:00:00Z",  # 26 + 28 + 31 + 5 = 90 days later: shift 180, 180 % 3 = 0
        seg("alice@example.com", "2026-04-05T09:00:00Z", "2026-04-05T21:00:00Z"),
        seg("bob", "2026-04-05T21:00:00Z", "2026-04-06T09:00:00Z"),
    ),
    (
        "2026-01-04T06:00:00Z",  # before the start, inside erin's override
        seg("erin", "2026-01-04T00:00:00Z", "2026-01-04T12:00:00Z", True),
        seg("alice@example.com", "2026-01-05T09:00:00Z", "2026-01-05T21:00:00Z"),  # after the gap
    ),
    (
        "2026-01-05T08:59:59Z",  # before the start, after erin: nobody
        None,
        seg("alice@example.com", "2026-01-05T09:00:00Z", "2026-01-05T21:00:00Z"),
    ),
    (
        "2026-01-01T00:00:00Z",  # before everything: nobody, erin next
        None,
        seg("erin", "2026-01-04T00:00:00Z", "2026-01-04T12:00:00Z", True),
    ),
]


@pytest.mark.parametrize(("at", "now", "nxt"), CASES, ids=[c[0] for c in CASES])
def test_whoison_follows_the_shifts_and_overrides(srv: RunningServer, at: str, now: Any, nxt: Any) -> None:
    with srv.client() as c:
        rot = create(c)
        doc = who(c, rot, at)
        assert doc["at"] == at
        assert doc["on_call"] == now
        assert doc["next"] == nxt


def test_times_show_in_the_rotations_offset_and_at_takes_any_offset(srv: RunningServer) -> None:
    with srv.client() as c:
        rot = create(c, utc_offset="+01:00")
        assert rot["start"] == "2026-01-05T10:00:00+01:00"
        # 04:00+01:00 is 03:00Z: dave's override
        doc = who(c, rot, "2026-01-06T04:00:00+01:00")
        assert doc["on_call"] == seg("dave", "2026-01-06T01:00:00+01:00", "2026-01-06T07:00:00+01:00", True)
        assert doc["next"] == seg("bob", "2026-01-06T07:00:00+01:00", "2026-01-06T10:00:00+01:00")


def test_whoison_without_a_rotation_answers_for_each_and_by_name(srv: RunningServer) -> None:
    with srv.client() as c:
        a = create(c)
        b = create(c, members=["zed"], start="2026-01-01T00:00:00Z", overrides=[])
        every = c.get(WHO, params={"at": "2026-01-05T22:00:00Z"}).json()["whoison"]
        by_id = {d["rotation_id"]: d for d in every}
        assert by_id[a["id"]]["on_call"]["member"] == "bob"
        # one member, 12 h shifts from Jan 1st: zed from 2026-01-05T12:00Z to 2026-01-06T00:00Z
        assert by_id[b["id"]]["on_call"] == seg("zed", "2026-01-05T12:00:00Z", "2026-01-06T00:00:00Z")
        named = c.get(WHO, params={"rotation": b["name"], "at": "2026-01-05T22:00:00Z"}).json()["whoison"]
        assert [d["rotation_id"] for d in named] == [b["id"]]
        now = c.get(WHO, params={"rotation": a["id"]}).json()["whoison"][0]
        assert now["on_call"] is not None  # the rotation started in the past: someone holds it


def test_rotations_are_read_replaced_paged_and_deleted(srv: RunningServer) -> None:
    with srv.client() as c:
        rot = create(c)
        got = c.get(f"{ROT}/{rot['id']}").json()
        assert got["members"] == ["alice@example.com", "bob", "carol"]
        assert got["overrides"][0] == {
            "member": "erin",
            "from": "2026-01-04T00:00:00Z",
            "until": "2026-01-04T12:00:00Z",
        }
        new = rotation(name=rot["name"], members=["bob", "carol"], overrides=[])
        r = c.put(f"{ROT}/{rot['id']}", json=new)
        assert r.status_code == 200, r.text
        # 2 members now: at 22:30 on the 6th (shift 3) it is carol (3 % 2 = 1)
        assert who(c, rot, "2026-01-06T22:30:00Z")["on_call"]["member"] == "carol"
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = c.get(ROT, params=params).json()
            seen += [x["id"] for x in page["rotations"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert rot["id"] in seen and len(seen) == len(set(seen))
        assert c.delete(f"{ROT}/{rot['id']}").status_code == 204
        assert c.get(f"{ROT}/{rot['id']}").status_code == 404
        assert c.delete(f"{ROT}/{rot['id']}").status_code == 404
        assert c.get(WHO, params={"rotation": rot["id"]}).status_code == 404


BAD = [
    ({"members": []}, "members"),
    ({"members": [f"m{i}" for i in range(51)]}, "members"),
    ({"members": ["bob", "Bob"]}, "members"),
    ({"members": ["bad\nname"]}, "members.0"),
    ({"members": ["x" * 129]}, "members.0"),
    ({"shift_hours": 0}, "shift_hours"),
    ({"shift_hours": 2161}, "shift_hours"),
    ({"shift_hours": "12"}, "shift_hours"),
    ({"start": "tomorrow"}, "start"),
    ({"utc_offset": "+15:00"}, "utc_offset"),
    ({"name": "  "}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"colour": "red"}, "colour"),
    (
        {"overrides": [{"member": "dave", "from": "2026-01-06T06:00:00Z", "until": "2026-01-06T00:00:00Z"}]},
        "overrides.0",
    ),
    ({"overrides": [{"member": "dave", "from": "2026-01-06T00:00:00Z", "until": "nope"}]}, "overrides.0.until"),
    (
        {
            "overrides": [
                {"member": "dave", "from": "2026-01-06T00:00:00Z", "until": "2026-01-06T06:00:00Z"},
                {"member": "erin", "from": "2026-01-06T05:00:00Z", "until": "2026-01-06T08:00:00Z"},
            ]
        },
        "overrides.1 overlaps overrides.0",
    ),
]


@pytest.mark.parametrize(("change", "named"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_rotations_get_a_400_naming_the_field(srv: RunningServer, change: dict[str, Any], named: str) -> None:
    with srv.client() as c:
        r = c.post(ROT, json=rotation(**change))
        assert r.status_code == 400, r.text
        assert named in r.json()["error"]["message"]


def test_bad_paths_queries_and_names(srv: RunningServer) -> None:
    with srv.client() as c:
        rot = create(c)
        assert c.post(ROT, json=rotation(name=rot["name"])).status_code == 409
        assert c.get(f"{ROT}/not-a-uuid").status_code == 400
        assert c.get(f"{ROT}/{uuid.uuid4()}").status_code == 404
        assert c.put(f"{ROT}/{uuid.uuid4()}", json=rotation()).status_code == 404
        r = c.get(WHO, params={"at": "yesterday"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("at:")
        assert c.get(WHO, params={"rotation": "no-such-rotation"}).status_code == 404
        assert c.get(WHO, params={"who": "x"}).status_code == 400
        assert c.get(ROT, params={"cursor": "garbage"}).status_code == 400
        assert c.post(ROT, content=b"{", headers={"Content-Type": "application/json"}).status_code == 400


def test_times_outside_the_supported_years_are_refused(srv: RunningServer) -> None:
    with srv.client() as c:
        for change in (
            {"start": "1969-12-31T23:59:59Z"},
            {"start": "9999-12-31T00:00:00Z"},
            {"overrides": [{"member": "x", "from": "8999-12-31T00:00:00Z", "until": "9000-01-02T00:00:00Z"}]},
        ):
            r = c.post(ROT, json=rotation(**change))
            assert r.status_code == 400 and "9000-01-01" in r.json()["error"]["message"], r.text
        assert c.get(WHO, params={"at": "9999-12-31T23:59:59Z"}).status_code == 400
        # the last supported instant, with the longest shift, shown at +14:00: still answered
        rot = create(c, start="8999-12-31T00:00:00Z", shift_hours=2160, utc_offset="+14:00", overrides=[])
        doc = who(c, rot, "8999-12-31T23:59:59.999999Z")
        assert doc["on_call"]["until"] == "9000-03-31T14:00:00+14:00"  # 90 days after the start
