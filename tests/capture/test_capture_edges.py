"""Edge cases of the capture paths: an upstream that breaks or outgrows the capture limit, names
the sensor cannot decode, and route URLs that cannot be used."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from agentwatch.capture.gateway.identify import provider_index
from agentwatch.capture.sensor.files import FileWatcher
from agentwatch.capture.sensor.procs import ProcessPoller
from agentwatch.capture.sensor.shipper import DiskBuffer, Shipper
from agentwatch.capture.settings import UpstreamRoute
from tests.capture.conftest import gateway_settings, wait_events
from tests.capture.test_gateway_transport import answer, chunked, raw_upstream
from tests.support.server import run_server

TEXT_EVENT = b'data: {"id":"c1","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Listing it."}}]}\n\n'
CALL_EVENT = (
    b'data: {"id":"c1","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_cut",'
    b'"type":"function","function":{"name":"run_shell","arguments":"{\\"cmd\\": \\"ls /\\"}"}}]}}]}\n\n'
)


def test_a_stream_cut_by_the_upstream_keeps_what_the_agent_got(settings):
    """The upstream hangs up in the middle of an SSE stream: the agent has the text and a whole tool
    call; the recording keeps them (as partial, with the error) instead of an empty answer."""

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        head = answer("200 OK", [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
        return [(head + chunked(TEXT_EVENT)[:-5], 0), (chunked(CALL_EVENT)[:-5], 0.05)], True  # no last chunk

    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "list /"}]}
    with raw_upstream(script) as up, run_server(gateway_settings(settings, up)) as srv, srv.client() as c:
        got = b""
        # the agent sees the stream end early, as the upstream ended it
        with (
            pytest.raises(httpx.RemoteProtocolError),
            c.stream("POST", "/gateway/openai/v1/chat/completions", json=body) as r,
        ):
            for chunk in r.iter_raw():
                got += chunk
        assert got == TEXT_EVENT + CALL_EVENT
        resp = wait_events(c, "ai.response", 1)[0]
        data = resp["data"]
        assert data["success"] is False and "RemoteProtocolError" in data["error"]["message"]
        assert resp["confidence"]["completeness"] == "partial"
        assert data["choices"][0]["message"]["content"] == "Listing it."
        assert [(t["id"], t["name"], t["arguments"]) for t in data["tool_calls"]] == [
            ("call_cut", "run_shell", {"cmd": "ls /"})
        ]
        call = wait_events(c, "agent.tool_call", 1)[0]["data"]
        assert call["call_id"] == "call_cut" and call["tool"]["type"] == "shell"


def test_a_json_answer_past_the_capture_limit_is_relayed_as_it_comes(settings):
    """A JSON answer larger than ``capture.max_capture_bytes`` is not held whole in memory before
    the agent gets a byte: the first part is relayed while the upstream is still sending."""
    first = b'{"object": "list", "data": [' + b'{"embedding": [0.1]},' * 400  # ~8 KB, over the 2 KiB limit
    rest = b'{"embedding": [0.2]}]}'
    total = len(first) + len(rest)

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        if req["target"] == "/v1/sized":
            head = answer("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(total))])
            return [(head + first, 0), (rest, 4.0)], False
        if req["target"] == "/v1/chunked":
            head = answer("200 OK", [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
            return [(head + chunked(first)[:-5], 0), (chunked(rest), 4.0)], False
        # a small JSON answer cut short: a clean 502, recorded with the status the agent got
        return [(answer("200 OK", [("Content-Type", "application/json"), ("Content-Length", "50")], b'{"id"'), 0)], True

    with (
        raw_upstream(script) as up,
        run_server(gateway_settings(settings, up, max_capture_bytes=2048)) as srv,
        srv.client() as c,
    ):
        for target in ("sized", "chunked"):
            started = time.monotonic()
            with c.stream("POST", f"/gateway/openai/v1/{target}", content=b"{}") as r:
                chunks = r.iter_raw()
                head = next(chunks)
                assert time.monotonic() - started < 2.5, target  # not held until the upstream's last byte
                assert (head + b"".join(chunks)) == first + rest
                if target == "sized":
                    assert r.headers["content-length"] == str(total)
        broken = c.post("/gateway/openai/v1/chat/completions", json={"model": "gpt-4o", "messages": []})
        assert broken.status_code == 502
        resp = wait_events(c, "ai.response", 1)[0]["data"]
        assert resp["status_code"] == 502 and resp["success"] is False


def ran_odd(event: dict[str, Any], pid: int) -> bool:
    """A process.exec event of ``pid`` whose last argument is the undecodable one."""
    args = event["data"].get("args") or [""]
    return event["process"]["pid"] == pid and os.fsencode(args[-1]) == b"aw-odd-\xff\xfe"


def test_sensor_events_of_undecodable_names_are_shipped(server, tmp_path):
    """A process whose arguments, and a watched file whose name, are not UTF-8: their events are
    sent (bytes that do not decode become U+FFFD) instead of the sensor dying on the batch."""
    watched = tmp_path / "watched"
    watched.mkdir()
    files = FileWatcher([str(watched)])
    poller = ProcessPoller(provider_index(None))
    poller.poll()  # prime
    odd = os.fsdecode(b"aw-odd-\xff\xfe")
    child = subprocess.Popen(["/bin/sh", "-c", "sleep 5", odd])
    try:
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        # (seen between fork and exec, the child is reported again once it has run the command)
        while not any(ran_odd(e, child.pid) for e in events) and time.monotonic() < deadline:
            events += [e for e in poller.poll() if e["event_type"] == "process.exec"]
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    with open(os.path.join(os.fsencode(watched), b".env-\xff"), "wb") as f:
        f.write(b"TOKEN=1\n")
    events += files.read(timeout_ms=1000)
    files.close()
    for e in events:
        orjson.dumps(e)  # every event is JSON-encodable
    shipper = Shipper(server.url, None, DiskBuffer(tmp_path / "buffer", 1_000_000))
    try:
        shipper.ship(events)
    finally:
        shipper.close()
    with server.client() as c:
        execs = [e for e in wait_events(c, "process.exec", len(events) - 1) if e["process"]["pid"] == child.pid]
        assert any(e["data"].get("args", [""])[-1] == "aw-odd-\ufffd\ufffd" for e in execs), execs
        writes = wait_events(c, "file.write", 1)
        assert writes[0]["data"]["path"] == str(watched / ".env-\ufffd")
        assert writes[0]["attrs"]["file.sensitive"] is True


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://llm.example:99999", "port"),
        ("http://llm.example:port", "port"),
        ("http://llm..example", "host name"),
        ("http://" + "a" * 64 + ".example", "host name"),
        ("http://llm .example", "spaces or control characters"),
        ("http://llm.example\x00.evil", "spaces or control characters"),
    ],
)
def test_route_base_urls_that_cannot_be_used_are_refused_naming_the_rule(url, rule):
    """Refused when the settings are read, not at the gateway's start (which failed with a traceback)."""
    with pytest.raises(ValidationError) as err:
        UpstreamRoute(provider="openai_compatible", base_url=url)
    assert "base_url" in str(err.value) and rule in str(err.value)


def test_a_stream_cut_by_the_upstream_is_logged_as_the_gateways_warning_not_a_server_error(settings):
    """The relay ends the agent's response unfinished on purpose (so the agent sees the break):
    the server must not report that as an application fault at ERROR level."""
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        head = answer("200 OK", [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
        return [(head + chunked(TEXT_EVENT)[:-5], 0)], True  # no last chunk

    server_log = logging.getLogger("uvicorn.error")
    keep = Keep(logging.DEBUG)
    server_log.addHandler(keep)
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "list /"}]}
    try:
        with raw_upstream(script) as up, run_server(gateway_settings(settings, up)) as srv, srv.client() as c:
            with (
                pytest.raises(httpx.RemoteProtocolError),
                c.stream("POST", "/gateway/openai/v1/chat/completions", json=body) as r,
            ):
                for _ in r.iter_raw():
                    pass
            assert wait_events(c, "ai.response", 1)[0]["data"]["success"] is False
    finally:
        server_log.removeHandler(keep)
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == []
