"""Eval baselines: the live rule set's numbers over the eval window, kept each time they are reset
(the newest is what evals compare with; the older ones stay as a record)."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import Engine, select

from agentwatch.detect.proposals.schema import detection_proposal_baselines as B
from agentwatch.events.model import iso


def save_baseline(engine: Engine, metrics: dict[str, Any], who: str) -> dict[str, Any]:
    row = {
        "id": str(uuid.uuid4()),
        "metrics": orjson.dumps(metrics).decode(),
        "principal": who,
        "created_at": time.time(),
    }
    with engine.begin() as conn:
        conn.execute(B.insert().values(**row))
    return baseline_json(SimpleNamespace(**row))


def latest_baseline(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(B).order_by(B.c.created_at.desc(), B.c.id.desc()).limit(1)).first()
    return baseline_json(row) if row is not None else None


def baseline_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "metrics": orjson.loads(row.metrics), "by": row.principal, "created_at": iso(row.created_at)}
