"""A decision is one conditional update: of many deciders at the same instant exactly one wins,
and a decision racing the expiry of the same request never both lands and expires it; on
SQLite and PostgreSQL, with real threads on real connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine

from agentwatch.soc.approvals import store

THREADS = 8


def pending(engine: Engine, ttl_s: float = 3600) -> dict[str, Any]:
    row = store.new_row(
        kind="config_change",
        subject="sigma rule pack",
        reason="turn off the noisy rule",
        action="disable rule 42",
        gated=None,
        requested_by="user:asker",
        requester="user:asker",
        ttl_s=ttl_s,
    )
    return store.create(engine, row, max_pending=1000, max_per_requester=1000)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at once (a barrier lets them go together); each one's result or exception."""
    gate = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        gate.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_of_concurrent_deciders_exactly_one_wins(engine: Engine) -> None:
    for _ in range(3):
        req = pending(engine)
        now = time.time()
        calls = [
            partial(
                store.decide,
                engine,
                req["id"],
                approve=i % 2 == 0,
                who=f"user:d{i}",
                person=f"user:d{i}",
                comment=None,
                now=now,
            )
            for i in range(THREADS)
        ]
        results = race(calls)
        won = [r for r in results if isinstance(r, dict)]
        lost = [r for r in results if isinstance(r, store.Refused)]
        assert len(won) == 1 and len(lost) == THREADS - 1, results
        assert {r.why for r in lost} == {"decided"}
        final = store.get(engine, req["id"])
        assert final is not None
        assert (final["status"], final["decided_by"]) == (won[0]["status"], won[0]["decided_by"])


def test_a_decision_racing_the_expiry_either_decides_or_expires(engine: Engine) -> None:
    for _ in range(3):
        req = pending(engine, ttl_s=60)
        at = time.time() + 120  # past its expiry for all three
        results = race(
            [
                partial(
                    store.decide, engine, req["id"], approve=True, who="user:d", person="user:d", comment=None, now=at
                ),
                partial(store.expire_due, engine, at),
                partial(store.expire_one, engine, req["id"], at),
            ]
        )
        refused = results[0]
        assert isinstance(refused, store.Refused) and refused.why in ("expired", "decided"), results
        expired_by = [r for r in (refused.current if refused.why == "expired" else None, results[2]) if r]
        expired_by += [r for r in results[1] if r["id"] == req["id"]]
        assert len(expired_by) == 1, results  # one caller expired it, whichever it was
        final = store.get(engine, req["id"])
        assert final is not None and final["status"] == "expired" and final["decided_by"] is None


def test_the_requester_is_refused_in_the_update_itself(engine: Engine) -> None:
    req = pending(engine)
    try:
        store.decide(
            engine, req["id"], approve=True, who="api_key:k2", person="user:asker", comment=None, now=time.time()
        )
    except store.Refused as exc:
        assert exc.why == "own"
    else:
        raise AssertionError("the requester decided their own request")
    final = store.get(engine, req["id"])
    assert final is not None and final["status"] == "pending"
