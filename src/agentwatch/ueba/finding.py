"""The finding an anomaly becomes: an alert of type ``ueba`` whose rule is named after the
weightiest reason (``AW-UEBA-<REASON>``) and whose dedup key is the entity, so repeats of one
reason for one entity merge into one alert; the anomaly itself rides in ``details``, for
``ueba.anomalies.record`` to store beside the alert. Its id is derived from the entity and its
first flagged event, so the same events never make two anomalies.
"""

from __future__ import annotations

import uuid
from typing import Any

from agentwatch.pipeline.pipeline import Finding
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.scoring import Verdict
from agentwatch.ueba.settings import UebaSettings

NAMESPACE = uuid.UUID("3b0c7e52-59a4-4f43-9d8e-1c1f6a2b7e90")


def finding_of(v: Verdict, s: UebaSettings, detector: str) -> Finding | None:
    """The finding an entity's flagged events of one batch make, its anomaly in ``details``."""
    score = v.score(s)
    if score < s.score_threshold:
        return None
    b = v.baseline
    primary = v.primary(s)
    reasons = v.reasons()
    ts = v.ts if v.ts is not None else max(e.ts for e in v.events)
    anomaly = {
        "id": str(uuid.uuid5(NAMESPACE, f"{b.entity_id}|{v.events[0].event_id}")),
        "entity": {"id": b.entity_id, "type": b.type, "value": b.value},
        "score": score,
        "reasons": reasons,
        "ts": ts,
        "source": v.source(),
        "event_ids": [e.event_id for e in v.events],
    }
    kinds = [r["kind"] for r in reasons]
    return Finding(
        detector=detector,
        rule_id=f"AW-UEBA-{primary.upper()}",
        title=f"Unusual behaviour of {b.type} {b.value[:200]}: {', '.join(k.replace('_', ' ') for k in kinds)}",
        severity=max(1, min(10, round(score * 10))),
        events=v.events,
        alert_type="ueba",
        message=message(b, reasons, score),
        tags=["ueba", *kinds],
        dedup_key=f"ueba:{b.entity_id}",
        ts=ts,
        details={"anomaly": anomaly},
    )


def message(b: Baseline, reasons: list[dict[str, Any]], score: float) -> str:
    """The alert's message: the entity, its score and each reason in words."""
    parts = []
    for r in reasons:
        if r["kind"] == "rare_hour":
            parts.append("activity at rare hours " + ", ".join(f"{h['hour']:02d}h UTC" for h in r["hours"]))
        elif r["kind"] == "burst":
            parts.append(f"{r['count']} events in one bucket against an average of {r['ema']:g}")
        else:
            parts.append(f"{r['kind'].replace('_', ' ')}: " + ", ".join(r["values"][:5]))
    return f"{b.type} {b.value[:200]} scored {score:.2f} against its baseline of {b.event_count} events: " + "; ".join(
        parts
    )
