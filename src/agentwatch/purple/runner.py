"""One execution of an atomic test: its events through the real ingest pipeline, then a
bounded wait for the alerts it should raise.

What marks the events as simulated, so that nobody mistakes them for real activity:

- ``source_format`` is ``purple`` (``GET /api/v1/events?source=purple`` lists them; real
  intake never writes that value: the OISP routes write ``oisp``, the gateway ``gateway``);
- ``agent`` is ``purple-team-simulator`` on every event, so every alert they raise names the
  agent entity ``purple-team-simulator`` (``GET /api/v1/alerts?entity=purple-team-simulator``);
- ``session_id`` is ``purple-<execution id>``, the host ``purple-<12 hex>.simulated`` (a name
  under a reserved-looking suffix that no real host has), and ``source.collector``
  ``agentwatch-purple-team``.

Each run has its own session and host, so stateful rules (a destination "never seen" from a
host, a tool description first seen on a host) start afresh, and its alerts never merge into
the alerts of an earlier run (the alert recorder deduplicates by session). The alerts of a run
are found by that session and must be raised on the run's own events (anyone can ingest an
event wearing the session, agent and host above: only ``source_format`` is out of an ingesting
client's reach, so those alerts are not the run's); each expected detection passes when an alert of its rule and type
is among them. The run passes when all of them fired within the timeout, and fails otherwise. With the
verdict, the run closes the alerts raised only on its own events: they were raised, published
and sent to the outputs like any (the alert listeners cannot tell them apart), but they do not
wait in the analysts' queue nor count against an SLA target.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import orjson
import structlog

from agentwatch.events.model import SIMULATED_FORMAT, iso
from agentwatch.events.normalize import normalize
from agentwatch.purple import store
from agentwatch.purple.catalog import AtomicTest

log = structlog.get_logger("agentwatch.purple")

SOURCE_FORMAT = SIMULATED_FORMAT
AGENT = "purple-team-simulator"
COLLECTOR = "agentwatch-purple-team"
RUN_MARK = "${run}"  # replaced in the catalogue's event values by the run's short id
POLL_S = 0.2


def session_of(execution_id: str) -> str:
    return f"purple-{execution_id}"


def host_of(execution_id: str) -> str:
    return f"purple-{execution_id.replace('-', '')[:12]}.simulated"


def build_events(aw: Any, test: AtomicTest, execution_id: str, start: float) -> list[Any]:
    """The test's events as canonical Events, validated as any OISP intake validates them."""
    run = execution_id.replace("-", "")[:12]
    out = []
    for item in test.events:
        body = copy.deepcopy({k: v for k, v in item.items() if k != "offset_s"})
        body = orjson.loads(orjson.dumps(body).decode().replace(RUN_MARK, run))
        body.update(
            ts=iso(start + item["offset_s"]),
            session_id=session_of(execution_id),
            agent=AGENT,
            host={"hostname": host_of(execution_id)},
            source={"collector": COLLECTOR},
        )
        out.append(normalize(body, type_validator=aw.type_validator, source_format=SOURCE_FORMAT))
    return out


def verdict(test: AtomicTest, found: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per expected detection: fired and the alert ids; the run's other alerts)."""
    results = []
    matched: set[str] = set()
    for want in test.expected:
        ids = [a["id"] for a in found if a["rule_id"] == want.rule_id and a["type"] == want.alert_type]
        matched.update(ids)
        results.append({**want.as_json(), "fired": bool(ids), "alert_ids": ids})
    unexpected = [{"alert_id": a["id"], "rule_id": a["rule_id"], "alert_type": a["type"]} for a in found]
    return results, [u for u in unexpected if u["alert_id"] not in matched]


def _cancelled(engine: Any, execution_id: str, session: str, sent: set[str]) -> None:
    store.close_run_alerts(engine, session, sent)  # before the status that says the run ended
    store.finish(engine, execution_id, "cancelled")


async def run(aw: Any, test: AtomicTest, execution_id: str, timeout_s: float) -> str:
    """Send the events, wait for the alerts; the final status (as stored, or as found stored
    when a cancel came first)."""
    engine = aw.engine
    started = time.monotonic()
    session = session_of(execution_id)
    sent: list[str] = []
    try:
        events = build_events(aw, test, execution_id, time.time())
        await aw.pipeline.submit(events)
        sent = [e.event_id for e in events]
        await asyncio.to_thread(store.mark_sent, engine, execution_id, sent, time.time())
        while True:
            found = await asyncio.to_thread(store.run_alerts, engine, session, set(sent))
            results, unexpected = verdict(test, found)
            passed = all(r["fired"] for r in results)
            late = time.monotonic() - started >= timeout_s
            if passed or late:
                error = None if passed else f"timeout: not every expected detection fired within {timeout_s:g} s"
                status = "passed" if passed else "failed"
                # the alerts first: whoever reads the verdict finds the run's alerts already closed
                await asyncio.to_thread(store.close_run_alerts, engine, session, set(sent))
                await asyncio.to_thread(store.finish, engine, execution_id, status, results, unexpected, error)
                break
            if await asyncio.to_thread(store.status, engine, execution_id) != store.RUNNING:
                # cancelled (possibly through another node)
                await asyncio.to_thread(store.close_run_alerts, engine, session, set(sent))
                break
            await asyncio.sleep(POLL_S)
    except asyncio.CancelledError:
        await asyncio.shield(asyncio.to_thread(_cancelled, engine, execution_id, session, set(sent)))
        raise
    except Exception as exc:  # the pipeline refused the events (queue full, shutting down) or a bug
        log.exception("purple.run_failed", execution=execution_id, test=test.id)
        reason = f"{type(exc).__name__}: {exc}"[:500]
        await asyncio.to_thread(store.finish, engine, execution_id, "failed", error=f"run: {reason}")
    return await asyncio.to_thread(store.status, engine, execution_id) or "deleted"
