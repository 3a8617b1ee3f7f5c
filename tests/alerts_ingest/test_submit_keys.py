"""The idempotency-key store on SQLite and PostgreSQL: one claimant wins, a retry is told to
wait, a dead claim is taken over after its lease, a finished key replays its answer, old keys
go."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from agentwatch.alerts.intake.idempotency import KEEP_S, LEASE_S, claim, finish, release
from agentwatch.alerts.intake.schema import alert_submit_keys

T = 1_000_000.0


def test_claims_wait_conflict_take_over_and_replay(engine: Engine) -> None:
    assert claim(engine, "user:1", "k", "h1", T).outcome == "new"
    assert claim(engine, "user:1", "k", "h1", T + 1).outcome == "busy"
    assert claim(engine, "user:1", "k", "h2", T + 1).outcome == "mismatch"
    assert claim(engine, "user:2", "k", "h2", T + 1).outcome == "new"  # keys are per caller
    assert claim(engine, "user:1", "k", "h1", T + LEASE_S + 1).outcome == "new"  # the first died
    assert claim(engine, "user:1", "k", "h1", T + LEASE_S + 2).outcome == "busy"
    finish(engine, "user:1", "k", 201, {"alert": {"id": "a"}}, T + LEASE_S + 3)
    done = claim(engine, "user:1", "k", "h1", T + LEASE_S + 4)
    assert (done.outcome, done.status, done.answer) == ("done", 201, {"alert": {"id": "a"}})
    release(engine, "user:1", "k")  # a finished key is not released
    assert claim(engine, "user:1", "k", "h1", T + LEASE_S + 5).outcome == "done"


def test_a_released_claim_runs_again_and_old_keys_are_forgotten(engine: Engine) -> None:
    assert claim(engine, "user:1", "r", "h", T).outcome == "new"
    release(engine, "user:1", "r")
    assert claim(engine, "user:1", "r", "h", T + 1).outcome == "new"
    assert claim(engine, "user:1", "other", "h", T + KEEP_S + 2).outcome == "new"
    with engine.connect() as conn:
        keys = conn.execute(select(alert_submit_keys.c.key)).scalars().all()
        assert keys == ["other"]
        assert conn.execute(select(func.count()).select_from(alert_submit_keys)).scalar() == 1
