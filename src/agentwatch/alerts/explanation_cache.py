"""The explanations kept in the ``kv`` table, under ``alert_explanation:<alert id>``.

An explanation is kept until ``llm.explanation_ttl_s`` has passed, with what it was made
from: a fingerprint of the alert data the model read (its triage status left out) and the
model asked. An alert that grew since (a repeat changed its count, last_seen or severity) or
a changed ``llm.model`` makes it stale: it is never answered again, the next explain makes a
new one. It is stored under the alert's lock, and the alert's deletion removes it.
"""

from __future__ import annotations

import hashlib
from threading import Event
from typing import Any

from sqlalchemy import Engine

from agentwatch.alerts.explain_prompt import alert_data
from agentwatch.detect.queries import lock_alert
from agentwatch.events.model import iso
from agentwatch.store import kv

CACHE_PREFIX = "alert_explanation:"


def cache_key(alert_id: str) -> str:
    return CACHE_PREFIX + alert_id


def fingerprint(alert: dict[str, Any]) -> str:
    """What an explanation of ``alert`` was derived from: the data the model reads, without the
    triage status (acknowledging an alert does not change what happened, so it keeps its
    explanation; a repeat does)."""
    return hashlib.sha256(alert_data({**alert, "status": None}).encode()).hexdigest()


def cached(engine: Engine, alert_id: str) -> dict[str, Any] | None:
    """The stored explanation of ``alert_id``, fresh, expired or stale; None when there is none."""
    entry = kv.get(engine, cache_key(alert_id))
    return entry if _well_formed(entry) else None


def _well_formed(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("explanation"), str)
        and isinstance(entry.get("created_at"), int | float)
        and isinstance(entry.get("expires_at"), int | float)
    )


def is_fresh(entry: dict[str, Any], now: float) -> bool:
    return now < entry["expires_at"]


def unusable(entry: dict[str, Any], alert_print: str, model: str | None, now: float) -> str | None:
    """Why ``entry`` may not be answered for the alert whose :func:`fingerprint` is
    ``alert_print``: ``"expired"``, ``"alert_changed"`` or ``"model_changed"``; None when it may.
    ``model`` is the model explanations are asked of now (None when explanations are off:
    then no model is current and the one that made it is not held against it). An entry
    stored before fingerprints were kept counts as made from another alert state."""
    if not is_fresh(entry, now):
        return "expired"
    if entry.get("alert_fingerprint") != alert_print:
        return "alert_changed"
    if model is not None and entry.get("asked_model") != model:
        return "model_changed"
    return None


def keep(engine: Engine, alert_id: str, entry: dict[str, Any]) -> bool:
    """Store ``entry`` as the explanation of ``alert_id`` unless the alert is gone; whether it
    was stored. Under the alert's lock, which its deletion holds too: a backend call outlives a
    DELETE that came meanwhile, and its explanation must not stay behind the alert."""
    with engine.begin() as conn:
        if not lock_alert(conn, alert_id):
            return False
        kv.put_in(conn, cache_key(alert_id), entry)
    return True


def purge_expired(engine: Engine, now: float, stopping: Event | None = None) -> int:
    """Delete every expired (or unreadable) explanation; how many. Once ``stopping`` is set it
    stops between two pages (the server is shutting down)."""
    return kv.purge(engine, CACHE_PREFIX, lambda entry: not _well_formed(entry) or not is_fresh(entry, now), stopping)


def answer(entry: dict[str, Any], *, was_cached: bool) -> dict[str, Any]:
    """The API's shape of a stored explanation."""
    return {
        "alert_id": entry["alert_id"],
        "explanation": entry["explanation"],
        "model": entry["model"],
        "created_at": iso(entry["created_at"]),
        "expires_at": iso(entry["expires_at"]),
        "cached": was_cached,
    }
