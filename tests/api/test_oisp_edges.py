"""OISP sensor API and ingest on inputs at the edges: looping or very deep process lineage,
reused pids, times at the ends of the calendar, long indexed text, byte order marks, content
encodings other than gzip and oversized items of a JSON array. Each store, a real server."""

from __future__ import annotations

import itertools
import zlib

import orjson

from agentwatch.api.oisp import MAX_TREE_DEPTH, build_tree
from tests.support.server import RunningServer

_hosts = itertools.count()


def new_host() -> str:
    return f"edge-host-{next(_hosts)}"


def exec_ev(host: str, ts: str, pid: int, name: str, ppid: int | None = None) -> dict:
    proc: dict = {"pid": pid, "name": name}
    if ppid is not None:
        proc["ppid"] = ppid
    return {
        "event_type": "process.exec",
        "ts": ts,
        "process": proc,
        "host": {"hostname": host},
        "data": {"exe": f"/usr/bin/{name}"},
    }


def exit_ev(host: str, ts: str, pid: int, name: str) -> dict:
    return {
        "event_type": "process.exit",
        "ts": ts,
        "process": {"pid": pid, "name": name},
        "host": {"hostname": host},
        "data": {"exit_code": 0},
    }


def ingest(c, events) -> dict:
    r = c.post("/api/v1/ingest", json=events)
    assert r.status_code == 200, r.text
    return r.json()


def flatten(nodes: list[dict], depth: int = 0) -> list[tuple[int, int]]:
    out = []
    for n in nodes:
        out.append((n["pid"], depth))
        out.extend(flatten(n["children"], depth + 1))
    return out


def roots_of(tree: list[dict], host: str) -> list[dict]:
    return [n for n in tree if n["host"] == host]


def test_process_tree_keeps_processes_whose_parents_loop(open_server: RunningServer):
    """Two processes naming each other as parent (and one naming itself) are in the tree: the
    loop is cut at its lowest pid, which becomes a root; nothing hangs or disappears."""
    host = new_host()
    events = [
        exec_ev(host, "2026-01-01T00:00:00Z", 10, "a", ppid=11),
        exec_ev(host, "2026-01-01T00:00:01Z", 11, "b", ppid=10),
        exec_ev(host, "2026-01-01T00:00:02Z", 12, "c", ppid=11),
        exec_ev(host, "2026-01-01T00:00:03Z", 20, "self", ppid=20),
    ]
    with open_server.client() as c:
        assert ingest(c, events)["stored"] == 4
        r = c.get("/api/process-tree")
    assert r.status_code == 200, r.text
    mine = roots_of(r.json()["tree"], host)
    assert sorted(flatten(mine)) == [(10, 0), (11, 1), (12, 2), (20, 0)]
    loop = next(n for n in mine if n["pid"] == 10)
    assert loop["ppid"] == 11  # the cut parent link is still told


def test_build_tree_cuts_every_loop_once_and_keeps_hanging_branches():
    rows = [
        {"host": "h", "pid": pid, "ppid": ppid, "name": str(pid), "exe": None}
        for pid, ppid in [(30, 31), (31, 32), (32, 30), (33, 32), (1, None), (2, 1), (3, 99)]
    ]
    tree = build_tree(rows)
    assert sorted(flatten(tree)) == [(1, 0), (2, 1), (3, 0), (30, 0), (31, 2), (32, 1), (33, 2)]


def test_process_tree_deeper_than_json_nesting_is_served(open_server: RunningServer):
    """A chain of 300 processes, each the parent of the next: the answer would nest past what
    JSON serialisers take; deeper levels continue as roots of their own instead of a 500."""
    host = new_host()
    chain = [
        exec_ev(host, "2026-01-01T00:00:00Z", 5000 + i, "sh", ppid=5000 + i - 1 if i else None) for i in range(300)
    ]
    with open_server.client(timeout=60) as c:
        assert ingest(c, chain)["stored"] == 300
        r = c.get("/api/process-tree")
    assert r.status_code == 200, r.text[:300]
    mine = roots_of(r.json()["tree"], host)
    levels = flatten(mine)
    assert sorted(pid for pid, _ in levels) == list(range(5000, 5300))
    assert max(depth for _, depth in levels) == MAX_TREE_DEPTH - 1
    assert [n["pid"] for n in mine] == [5000, 5000 + MAX_TREE_DEPTH, 5000 + 2 * MAX_TREE_DEPTH]
    assert mine[1]["ppid"] == 5000 + MAX_TREE_DEPTH - 1


def test_a_reused_pid_shows_the_new_process(open_server: RunningServer):
    """After a process exits, an exec under its pid is a new process: it is not shown as exited,
    with the old start time, name or event count (in separate requests and in one)."""
    host = new_host()
    with open_server.client() as c:
        ingest(c, [exec_ev(host, "2026-01-01T00:00:00Z", 50, "old"), exit_ev(host, "2026-01-01T00:00:05Z", 50, "old")])
        ingest(c, [exec_ev(host, "2026-01-01T01:00:00Z", 50, "new", ppid=1)])
        # all in one request, sent out of order
        ingest(
            c,
            [
                exec_ev(host, "2026-01-01T01:00:00Z", 60, "new", ppid=1),
                exec_ev(host, "2026-01-01T00:00:00Z", 60, "old"),
                exit_ev(host, "2026-01-01T00:00:05Z", 60, "old"),
            ],
        )
        procs = {p["pid"]: p for p in c.get("/api/processes").json()["processes"] if p["host"] == host}
    for pid in (50, 60):
        p = procs[pid]
        assert p["name"] == "new" and p["exe"] == "/usr/bin/new" and p["ppid"] == 1, p
        assert p["exited_at"] is None, p
        assert p["start_time"] == "2026-01-01T01:00:00Z" and p["event_count"] == 1, p


def test_a_late_exec_of_an_exited_process_does_not_reset_it(open_server: RunningServer):
    host = new_host()
    with open_server.client() as c:
        ingest(c, [exit_ev(host, "2026-01-01T00:00:05Z", 70, "job")])
        ingest(c, [exec_ev(host, "2026-01-01T00:00:00Z", 70, "job")])  # the same process, reported late
        p = next(p for p in c.get("/api/processes").json()["processes"] if p["host"] == host)
    assert p["exited_at"] == "2026-01-01T00:00:05Z" and p["event_count"] == 2
    assert p["start_time"] == "2026-01-01T00:00:00Z"


def test_times_outside_the_utc_calendar_are_refused_at_intake(open_server: RunningServer):
    """A ts whose UTC time falls past 9999-12-31 (or before year 1) was stored, and every list
    showing it (processes, traces) answered 500; it is refused naming ``ts``."""
    host = new_host()
    events = [
        exec_ev(host, "9999-12-31T23:59:59-23:59", 80, "late"),
        exec_ev(host, "9999-12-31T23:59:59.9999999Z", 81, "late"),
        exec_ev(host, "0001-01-01T00:00:00+01:00", 82, "early"),
        exec_ev(host, "9999-12-31T23:59:59Z", 83, "last"),
        exec_ev(host, "0001-01-01T00:00:00Z", 84, "first"),
    ]
    with open_server.client() as c:
        out = ingest(c, events)
        assert out["stored"] == 2 and out["rejected"] == 3, out
        assert {e["index"] for e in out["errors"]} == {0, 1, 2}
        assert all(e["field"] == "ts" and "9999-12-31T23:59:59Z" in e["reason"] for e in out["errors"])
        for path in ("/api/processes", "/api/traces", "/api/events", "/api/process-tree"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:300])
        procs = {p["pid"]: p for p in c.get("/api/processes").json()["processes"] if p["host"] == host}
        assert procs[83]["start_time"] == "9999-12-31T23:59:59Z"
        assert procs[84]["start_time"] == "0001-01-01T00:00:00Z"
        r = c.get("/api/events", params={"since": "9999-12-31T23:59:59-23:59"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("since:")


def test_long_hostnames_and_process_names_are_stored(open_server: RunningServer):
    """The schema bounds neither; PostgreSQL refused the indexed copies past 256 characters and
    the request answered 500. The body keeps them whole; the process filter finds the name."""
    host = "h" * 300
    name = "n" * 300
    event = exec_ev(host, "2026-01-01T00:00:00Z", 90, name)
    event["event_id"] = "edge-long-text"
    with open_server.client() as c:
        out = ingest(c, [event])
        assert out["stored"] == 1, out
        got = c.get("/api/events/edge-long-text").json()
        assert got["host"]["hostname"] == host and got["process"]["name"] == name
        assert c.get("/api/events", params={"process": name[:256]}).json()["total"] == 1
        procs = [p for p in c.get("/api/processes").json()["processes"] if p["pid"] == 90]
        assert procs and procs[0]["name"] == name[:256]


def test_json_array_items_obey_the_event_size_limit(open_server: RunningServer):
    """``ingest.max_event_bytes`` held for a single event and NDJSON lines, not for items of a
    JSON array; the oversized item is refused alone, naming the rule."""
    limit = open_server.aw.settings.ingest.max_event_bytes
    host = new_host()
    big = exec_ev(host, "2026-01-01T00:00:00Z", 100, "big")
    big["data"]["args"] = ["x" * (limit + 10)]
    small = exec_ev(host, "2026-01-01T00:00:00Z", 101, "small")
    with open_server.client() as c:
        out = ingest(c, [small, big])
    assert out["stored"] == 1 and out["rejected"] == 1, out
    assert out["errors"] == [{"index": 1, "field": "event", "reason": f"larger than {limit} bytes"}]


def test_a_content_encoding_other_than_gzip_is_refused_with_415(open_server: RunningServer):
    """A deflate (or br) body used to be split into lines of garbage and answered 200 with
    "malformed JSON" rejections; it is refused whole, naming the header."""
    body = orjson.dumps([exec_ev(new_host(), "2026-01-01T00:00:00Z", 110, "x")])
    with open_server.client() as c:
        for encoding, payload in (("deflate", zlib.compress(body)), ("br", body)):
            r = c.post("/api/v1/ingest", content=payload, headers={"Content-Encoding": encoding})
            assert r.status_code == 415, r.text
            err = r.json()["error"]
            assert err["code"] == "UNSUPPORTED_MEDIA_TYPE"
            assert err["message"].startswith("header content-encoding:") and encoding in err["message"]
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "identity"})
        assert r.status_code == 200 and r.json()["stored"] == 1


def test_a_byte_order_mark_before_the_body_is_ignored(open_server: RunningServer):
    """Editors on Windows write a UTF-8 BOM at the start of JSON and NDJSON files; the first
    event was refused as malformed JSON."""
    host = new_host()
    bom = b"\xef\xbb\xbf"
    single = orjson.dumps(exec_ev(host, "2026-01-01T00:00:00Z", 120, "x"))
    lines = b"\r\n".join(orjson.dumps(exec_ev(host, "2026-01-01T00:00:00Z", 121 + i, "x")) for i in range(2))
    with open_server.client() as c:
        for body in (bom + single, bom + lines + b"\r\n", bom + b"[" + single + b"]"):
            r = c.post("/api/v1/ingest", content=body)
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def test_processes_refuses_an_unknown_query_parameter(open_server: RunningServer):
    with open_server.client() as c:
        r = c.get("/api/processes", params={"lmit": 5})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("lmit: unknown query parameter")
