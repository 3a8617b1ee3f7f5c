"""Defects found by attacking the honeytokens capability: canaries hidden by terminal colours or
Python byte escapes, and the public tracking route telling a live id by delaying the next
request on the same connection; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from sqlalchemy import update

from agentwatch.api.errors import ApiError
from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.soc.honeytokens import generate, track
from agentwatch.soc.honeytokens.scan import NeedleIndex
from agentwatch.soc.honeytokens.schema import honeytokens
from tests.detect.helpers import llm_request, wait_for
from tests.honeytokens.conftest import TOKENS, create, touches
from tests.support.server import RunningServer

ESC = "\x1b"


def index_of(*secrets: generate.Secret) -> NeedleIndex:
    return NeedleIndex.of([(f"t{i}", generate.digest(n), len(n)) for i, s in enumerate(secrets) for n in s.needles])


def test_a_canary_in_coloured_terminal_output_is_found() -> None:
    # `grep --color=always KEY .env` wraps the match in CSI sequences: ESC[01;31m ESC[K ... ESC[m ESC[K;
    # `ls --color` and friends put ESC[1m or ESC[0;32m right before a name
    key = generate.make("api_key", "generic")
    aws = generate.make("api_key", "aws")
    index = index_of(key, aws)
    grep = f"KEY={ESC}[01;31m{ESC}[K{key.value}{ESC}[m{ESC}[K\n"
    assert index.scan(orjson.dumps({"data": {"output": grep}})) == {"t0": key.value}
    bold = f"{ESC}[1m{aws.parts['access_key_id']}{ESC}[0m"
    assert index.scan(orjson.dumps({"stdout": bold})) == {"t1": aws.parts["access_key_id"]}
    green = f"{ESC}[0;32m{aws.parts['secret_access_key']}"
    assert index.scan(orjson.dumps({"stdout": green})) == {"t1": aws.parts["secret_access_key"]}


def test_a_canary_after_a_python_byte_escape_is_found() -> None:
    # a tool printing bytes: b'\x00sk...' stored as JSON text \\x00...
    key = generate.make("text", "marker")
    index = index_of(key)
    shown = repr(b"\x00" + key.value.encode())
    assert index.scan(orjson.dumps({"data": {"result": shown}})) == {"t0": key.value}
    # the extra candidates stay anchored to the escape: other glued letters are still another run
    assert index.scan(orjson.dumps({"x": f"x00{key.value}"})) == {}
    assert index.scan(orjson.dumps({"x": f"[1m{key.value}"})) == {"t0": key.value}
    assert index.scan(orjson.dumps({"x": f"a1m{key.value}"})) == {}


def test_a_live_touch_does_not_hold_up_the_next_request_on_the_connection(srv: RunningServer) -> None:
    """The touch is recorded after the answer; it must not be recorded *in* the request's cycle,
    or the next request on the same keep-alive connection waits for it, and its delay tells a
    live tracking id from an unknown one (measured: about 3 ms more, on an idle server)."""
    with srv.client(timeout=4) as c:
        url = create(c, name="held canary", kind="url")
        path = url["value"].removeprefix("https://canary.example")
        with srv.aw.engine.connect() as conn:
            held = conn.begin()
            # hold the token's row (and on SQLite the write lock): recording the touch must wait
            conn.execute(update(honeytokens).where(honeytokens.c.id == url["id"]).values(touches=honeytokens.c.touches))
            assert c.get(path).status_code == 204
            # the same connection: answered at once although the touch is still waiting
            assert c.get(f"{TOKENS}/track/{'Q' * 32}").status_code == 204
            held.rollback()
        [touch] = wait_for(lambda: touches(c, url["id"]))
        assert touch["source"] == "track"


def test_a_credential_planted_in_a_system_prompt_touches_only_when_it_leaves_it(srv: RunningServer) -> None:
    """The documented use "a fake database login in a system prompt": every request of that
    agent carries its system prompt, so a hit there is the canary where it was planted, not a
    touch; the same value in a user or assistant message, a tool call or a response is one."""
    with srv.client() as c:
        cred = create(c, name="db login in prompt", kind="credential", username="backup_admin")
        prompt = f"You may use the database as {cred['value']} when asked."
        planted = llm_request("hello")
        planted["data"]["messages"].insert(0, {"role": "system", "content": prompt})
        r = c.post("/api/v1/ingest", json=[planted, planted | {"data": {**planted["data"]}}])
        assert r.status_code == 200 and r.json()["stored"] == 2, r.text
        assert touches(c, cred["id"]) == []  # committed with the events: nothing to wait for
        leaked = llm_request(f"the password is {cred['parts']['password']}")
        leaked["data"]["messages"].insert(0, {"role": "system", "content": prompt})
        r = c.post("/api/v1/ingest", json=[leaked])
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        [touch] = touches(c, cred["id"])
        assert touch["location"] == "data.messages.1.content"


def test_an_ipv6_client_cannot_escape_its_tracking_budget_by_changing_address(tmp_path: Path) -> None:
    """One IPv6 host holds a whole /64: counting each address apart would let it make 2^64 times
    the budget of tracking requests (rows and alerts); an IPv4-mapped client is its IPv4 address."""
    cfg = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path}/t.db",
        auth={"enabled": False},
        honeytokens={"track_per_address": 2, "track_total": 1000},
    )
    aw = Agentwatch(cfg)
    try:

        async def answers(clients: list[str]) -> list[int]:
            out = []
            for client in clients:
                try:
                    await track._within_budget(aw, client)
                    out.append(204)
                except ApiError as exc:
                    out.append(exc.status)
            return out

        same_64 = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]
        assert asyncio.run(answers(same_64)) == [204, 204, 429]
        assert asyncio.run(answers(["2001:db8:1:3::1"])) == [204]  # another /64: its own budget
        assert asyncio.run(answers(["192.0.2.7", "::ffff:192.0.2.7", "::ffff:c000:207"])) == [204, 204, 429]
    finally:
        aw.engine.dispose()
