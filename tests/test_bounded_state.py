"""Long-lived in-memory state fed by network input stays bounded under hostile input.

Each test feeds many distinct keys (or large payloads) through the real path of one
structure (a running server where that is quick, else the component's public API in
process) and checks that the structure stays within its documented limit, and that what
is evicted first is what detection or throttling can best do without.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc
from pathlib import Path

from agentwatch.app import Agentwatch
from agentwatch.capture.gateway.exchange import Exchange
from agentwatch.config import Settings
from agentwatch.detect.fieldmap import pipelines
from agentwatch.detect.sigma import SigmaEngine, load_rule
from agentwatch.soc.auth.limits import MAX_MEMORY_KEYS, MemoryCounter
from tests.detect.sigma.helpers import proc, rules
from tests.support.server import open_settings, run_server
from tests.support.windows import wait_out_window_edge

MIB = 1024 * 1024


# -- rate-limit and login-throttle counters (soc/auth/limits.py) ----------------------------------


# The eviction works alike at any cap: the tests use a small one (a burst at the default cap of
# 100,000 took tens of seconds of CPU) and check the default apart.
CAP = 2_000


def test_the_counters_are_capped_by_default():
    assert MemoryCounter().max_keys == MAX_MEMORY_KEYS == 100_000


async def test_rate_limit_counters_stay_bounded_under_a_burst_of_distinct_addresses():
    """Twice the cap of distinct client addresses inside one window (an IPv6 /64 has plenty):
    the counters never exceed the cap, and the busiest recent key keeps its count."""
    counter = MemoryCounter(max_keys=CAP)
    wait_out_window_edge(3600, margin=60)
    await counter.hit("addr:192.0.2.7", 600, 3600)
    for i in range(2 * CAP):
        await counter.hit(f"addr:2001:db8::{i:x}", 600, 3600)
        await counter.hit("addr:192.0.2.7", 600, 3600)  # a client hitting all along is never the one evicted
        size = len(counter._counts)
        assert size <= CAP, f"{size} counters after {i + 1} addresses"
    assert counter.evicted >= CAP  # what was forgotten is counted
    d = await counter.peek("addr:192.0.2.7", 10**9, 3600)
    assert d.remaining == 10**9 - (2 * CAP + 1)


async def test_counters_of_ended_windows_make_room_before_a_live_login_throttle():
    """A flood of short-window counters must not wipe a failed-login count whose window is still
    running: when room is needed, counters of ended windows go first."""
    counter = MemoryCounter(max_keys=CAP)
    wait_out_window_edge(900, margin=30)
    for _ in range(3):
        await counter.hit("login:acct:victim", 5, 900)
    for i in range(CAP - 1):  # fills the map exactly to the cap
        await counter.hit(f"addr:2001:db8::{i:x}", 600, 1)
    await asyncio.sleep(1.1)  # every 1 s window of the flood has ended
    await counter.hit("addr:2001:db8::late", 600, 1)  # one more key: room has to be made
    size = len(counter._counts)
    assert size <= CAP
    d = await counter.peek("login:acct:victim", 5, 900)
    assert d.remaining == 2  # 3 of 5 failed attempts still counted


# -- live scan-stream clients (api/scan.py, the live hub's subscriptions) -------------------------


def test_scan_stream_clients_are_capped_by_live_max_clients(tmp_path: Path, database_url: str):
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        live={"max_clients": 3},
    )
    with run_server(settings) as srv, srv.client() as c, contextlib.ExitStack() as streams:
        statuses = []
        for _ in range(8):
            r = streams.enter_context(c.stream("GET", "/api/scan/stream"))
            statuses.append(r.status_code)
            if r.status_code != 200:
                r.read()
                assert r.json()["error"]["message"] == "stream: too many live clients"
                assert r.headers["retry-after"] == "5"
            subscribers = c.get("/api/v1/health").json()["components"]["live"]["subscribers"]
            assert subscribers <= 3, f"{subscribers} live subscriptions after {len(statuses)} scan streams"
        assert statuses == [200, 200, 200, 503, 503, 503, 503, 503]


# -- Sigma correlation windows (detect/sigma/correlation.py) -------------------------------------

CORRELATION = """\
title: Remote shell
id: 7a0c0a00-0000-4000-8000-000000000001
name: remote_shell
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: ssh
  condition: sel
---
title: Correlated
id: 7a0c0a00-0000-4000-8000-0000000000ff
correlation:
  type: event_count
  rules: [remote_shell]
  group-by: [User]
  timespan: 1h
  condition: {%s}
"""
CORRELATION_ID = "7a0c0a00-0000-4000-8000-0000000000ff"


def test_correlation_windows_do_not_keep_event_payloads():
    """2 000 groups of one 50 KB command line each (100 MB of payload) must not stay in memory:
    a window needs an event's id, time and entities, not its body."""
    eng = SigmaEngine(rules(CORRELATION % "gte: 1000"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000):
            ev = proc("ssh " + f"{i:05d}" * 10_000, ts=1_700_000_000.0 + i, user=f"user{i}")
            assert eng.observe(ev, eng.match(ev)) == []
        del ev
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert eng.correlations.stats()[CORRELATION_ID]["events"] == 2_000  # all still counted
    assert kept < 20 * MIB, f"{kept / MIB:.0f} MiB kept for 2 000 windowed events"


def test_correlation_events_across_groups_are_capped():
    """max_groups (10 000) x max_events (1 000) is ten million events: the total a correlation
    keeps is capped at 100 000 events, the least recently used groups going first (counted)."""
    eng = SigmaEngine(rules(CORRELATION % "lte: 5000"))  # decided when the window closes: nothing fires here
    for g in range(105):
        for _ in range(1_000):
            ev = proc("ssh", ts=1_700_000_000.0, user=f"user{g}")
            eng.observe(ev, eng.match(ev))
    stats = eng.correlations.stats()[CORRELATION_ID]
    assert stats["events"] <= 100_000
    assert stats["groups"] >= 100  # the recent groups are whole
    assert stats["evicted"] >= 5


def test_field_references_of_uploaded_rules_are_not_kept_forever():
    """Every Sigma upload (a dry run too) resolves its field names; the memo of resolved fields
    must not grow with every name ever uploaded (20 uploads of 1 000 new names each)."""
    for n in range(20):
        fields = "\n".join(f"    Custom{n}x{i}: value" for i in range(1_000))
        text = (
            f"title: Many fields {n}\nlogsource: {{product: windows}}\ndetection:\n  sel:\n{fields}\n  condition: sel\n"
        )
        assert len(load_rule(text, "<upload>")) == 1
        size = len(pipelines._CACHE)
        assert size <= 4096, f"{size} field references kept after {n + 1} uploads"


# -- the gateway recorder's backlog (capture/gateway/recorder.py) --------------------------------


def test_gateway_backlog_is_bounded_in_bytes(tmp_path: Path):
    """The backlog was capped at 10 000 exchanges, each holding up to 32 MiB of request and
    8 MiB of response (400 GB): it is also capped in bytes, the excess dropped and counted."""
    aw = Agentwatch(open_settings(tmp_path, f"sqlite:///{tmp_path}/aw.db"))
    try:
        recorder = aw.components["gateway"].recorder
        provider = aw.components["gateway"].routes["openai"].provider
        body = b"{" + b" " * (MIB - 2) + b"}"  # one shared 1 MiB object: the test itself stays small
        for n in range(2_000):
            ex = Exchange(
                route="openai",
                provider=provider,
                endpoint="https://api.openai.com/v1/chat/completions",
                path="/v1/chat/completions",
                method="POST",
                ts=time.time(),
                t0=time.perf_counter(),
                request_body=body,
            )
            recorder.schedule(ex, "monitor")
            queued = sum(len(e.request_body) + e.captured_bytes for e, _mode, _verdict in recorder.queue)
            assert queued <= 256 * MIB, f"{queued / MIB:.0f} MiB waiting after {n + 1} exchanges"
        assert recorder.dropped >= 2_000 - 256
        counted = aw.metrics.registry.get_sample_value("agentwatch_events_dropped_total", {"reason": "gateway_backlog"})
        assert counted == recorder.dropped
    finally:
        aw.engine.dispose()
