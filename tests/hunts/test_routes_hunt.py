"""The hunts routes given bad input on a real server (SQLite and PostgreSQL): ``?run=`` values
that are not a run id, or a run of another hunt, odd hunt ids, and a folder whose file names
are not text. Each answers 400 or 404 naming the field, never 5xx."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.hunts.helpers import HUNTS, definition, hunt_settings, loaded, run, write
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("hunts")
    write(folder, "one.yml", definition("one"))
    write(folder, "two.yml", definition("two"))
    with open(os.fsencode(folder) + b"/odd\xff\n.yml", "wb") as f:  # a name that is not UTF-8
        f.write(definition("odd").encode())
    with run_server(hunt_settings(tmp_path_factory.mktemp("data"), module_database_url, folder)) as s:
        yield s


@pytest.mark.parametrize(
    "value",
    ["", "x", "%00", "0B0F7C1E-5F0C-4C61-9D0A-6F1D2A3B4C5D", "0b0f7c1e-5f0c-4c61-9d0a-6f1d2a3b4c5d%0A", "a" * 5000],
)
def test_a_run_value_that_is_not_a_run_id_is_400_naming_run(srv: RunningServer, value: str) -> None:
    with srv.client() as c:
        loaded(c, "one")
        r = c.get(f"{HUNTS}/one/results?run={value}")
        assert r.status_code == 400, r.text
        assert [d["field"] for d in r.json()["error"]["details"]] == ["run"]


def test_a_run_of_another_hunt_is_404(srv: RunningServer) -> None:
    with srv.client() as c:
        theirs = run(c, "two")["id"]
        r = c.get(f"{HUNTS}/one/results", params={"run": theirs})
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", r.text
        assert c.get(f"{HUNTS}/two/results", params={"run": theirs}).json()["run"]["id"] == theirs


@pytest.mark.parametrize("hunt_id", ["one%0A", "ONE", "%00", "o" * 65, "%C3%A9t%C3%A9", "..%2F..%2Fetc"])
def test_an_odd_hunt_id_is_404(srv: RunningServer, hunt_id: str) -> None:
    with srv.client() as c:
        for path in (f"{HUNTS}/{hunt_id}", f"{HUNTS}/{hunt_id}/results"):
            assert c.get(path).status_code == 404, path
        assert c.post(f"{HUNTS}/{hunt_id}/run").status_code == 404


def test_a_file_name_that_is_not_text_is_listed_escaped(srv: RunningServer) -> None:
    with srv.client() as c:
        assert loaded(c, "odd")["file"] == "odd\\xff\\n.yml"
        listed = c.get(HUNTS)
        assert listed.status_code == 200
        assert {h["id"]: h["file"] for h in listed.json()["hunts"]}["odd"] == "odd\\xff\\n.yml"
