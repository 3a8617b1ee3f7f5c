"""``GET /api/v1/events?q=``: the same substring search on SQLite and on PostgreSQL.

``q`` looks in the stored event, which is JSON: the text a client searches for is matched
where it stands in the event's values (escaped as the store escapes it), ASCII letters without
regard to case and every other character exactly, whichever store answers.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.server import RunningServer

COMMANDS = [
    "Curl https://x.example/i.sh",
    "Straße ÜBER alles",
    "über",
    "cat C:\\Users\\ana\\notes.txt",
    'say "hi"',
    "first line\nsecond line",
    "nul a\x00b",
    "replacement a\ufffdb",
]


def tool_call(command: str) -> dict[str, Any]:
    return {
        "event_type": "agent.tool_call",
        "ts": "2026-03-01T10:00:00Z",
        "data": {"tool": {"name": "run_shell", "type": "shell"}, "arguments": {"command": command}},
    }


@pytest.fixture(scope="module")
def srv(open_server: RunningServer) -> RunningServer:
    with open_server.client() as c:
        r = c.post("/api/v1/ingest", json=[tool_call(cmd) for cmd in COMMANDS])
        assert r.status_code == 200 and r.json()["stored"] == len(COMMANDS), r.text
    return open_server


def found(srv: RunningServer, q: str) -> list[str]:
    """The commands of the events ``q`` finds, in the order of COMMANDS; checks the total too."""
    with srv.client() as c:
        r = c.get("/api/v1/events", params={"q": q})
    assert r.status_code == 200, r.text
    doc = r.json()
    commands = [e["body"]["data"]["arguments"]["command"] for e in doc["events"]]
    assert doc["meta"]["total"] == len(commands)
    return sorted(commands, key=COMMANDS.index)


def test_q_folds_ascii_letters_only_and_the_same_on_both_stores(srv):
    # PostgreSQL's LIKE was case-sensitive where SQLite's folds A-Z: q=curl found the event on SQLite only
    assert found(srv, "curl") == ["Curl https://x.example/i.sh"]
    assert found(srv, "CURL HTTPS") == ["Curl https://x.example/i.sh"]
    assert found(srv, "straße") == ["Straße ÜBER alles"]
    # letters outside A-Z match exactly on both stores (SQLite cannot fold them)
    assert found(srv, "ÜBER") == ["Straße ÜBER alles"]
    assert found(srv, "über") == ["über"]


def test_q_takes_backslashes_quotes_and_control_characters_literally(srv):
    # the body is stored as JSON: these characters stand there escaped, and q used to be
    # matched against the escapes (q=" found every event, q=C:\Users none)
    assert found(srv, "C:\\Users\\ana") == ["cat C:\\Users\\ana\\notes.txt"]
    assert found(srv, "\\") == ["cat C:\\Users\\ana\\notes.txt"]
    assert found(srv, '"hi"') == ['say "hi"']
    assert found(srv, '"') == ['say "hi"']
    assert found(srv, "line\nsecond") == ["first line\nsecond line"]
    # a backslash and an n: the path's "\\notes", not the newline (stored as those two characters)
    assert found(srv, "\\n") == ["cat C:\\Users\\ana\\notes.txt"]


def test_q_with_nul_finds_the_nul_and_not_its_replacement_on_both_stores(srv):
    # PostgreSQL takes no NUL in a bound value (it is sent as U+FFFD): q=a%00b found the
    # event holding U+FFFD there, and on SQLite nothing
    assert found(srv, "a\x00b") == ["nul a\x00b"]
    assert found(srv, "a\ufffdb") == ["replacement a\ufffdb"]
