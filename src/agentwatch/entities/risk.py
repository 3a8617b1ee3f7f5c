"""An entity's risk history: its alerts summed into time buckets.

agentwatch keeps no risk score per entity (no UEBA). The risk of a bucket is the sum of the
severities (0-10) of the alerts naming the entity whose ``last_seen`` (event time of the alert's
latest finding) falls in it, whatever their status; ``alerts`` is how many they are. Buckets
are aligned to multiples of the resolution since the epoch and end with the one holding now,
oldest first, empty ones included. The database sums by bucket, so the answer is at most
``MAX_BUCKETS`` rows whatever the number of alerts.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, Integer, cast, func, select

from agentwatch.events.model import iso
from agentwatch.store.alerts_schema import alerts

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600}
RESOLUTIONS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
MAX_BUCKETS = 1000
NS = 1_000_000_000


def bucket_count(range_name: str, resolution: str) -> int:
    return RANGES[range_name] // RESOLUTIONS[resolution]


def risk_history(engine: Engine, entity_id: str, range_name: str, resolution: str, now: float) -> dict[str, Any]:
    step = RESOLUTIONS[resolution]
    n = bucket_count(range_name, resolution)
    end = (math.floor(now / step) + 1) * step  # the end of the bucket holding now
    start = end - n * step
    offset = (alerts.c.last_seen - start) / step
    # the bucket number: floor of a non-negative offset (SQLite's cast truncates; PostgreSQL's rounds)
    number = cast(offset, Integer) if engine.dialect.name == "sqlite" else cast(func.floor(offset), Integer)
    stmt = (
        select(number.label("n"), func.sum(alerts.c.severity), func.count())
        .where(
            alerts.c.entity_ids.contains(entity_id, autoescape=True),
            alerts.c.last_seen >= start,
            alerts.c.last_seen < end,
        )
        .group_by(number)
    )
    with engine.connect() as conn:
        sums = {int(k): (int(risk or 0), int(count)) for k, risk, count in conn.execute(stmt)}
    buckets = []
    for i in range(n):
        risk, count = sums.get(i, (0, 0))
        at = start + i * step
        buckets.append({"start": iso(at), "start_ns": at * NS, "risk": risk, "alerts": count})
    return {
        "range": range_name,
        "resolution": resolution,
        "start": iso(start),
        "end": iso(end),
        "buckets": buckets,
    }
