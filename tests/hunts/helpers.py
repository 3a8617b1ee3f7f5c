"""Shared helpers of the hunt tests: definitions written to the hunts folder, events ingested
with known ids, and polling for what the schedule does on its own."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from agentwatch.config import Settings
from agentwatch.events.model import iso
from agentwatch.hunts.settings import HuntSettings
from tests.detect.helpers import wait_for
from tests.support.server import open_settings

HUNTS = "/api/v1/hunts"


def hunt_settings(data_dir: Path, database_url: str, folder: Path, **hunts: Any) -> Settings:
    """Authentication off, a fast schedule tick and a short least interval (tests only)."""
    options = {"directory": folder, "tick_s": 0.1, "min_interval_s": 1, **hunts}
    return open_settings(data_dir, database_url).model_copy(update={"hunts": HuntSettings(**options)})


def ago(seconds: float) -> str:
    """An event time ``seconds`` before now (events of one batch otherwise share one time)."""
    return iso(time.time() - seconds)


def unique() -> str:
    return uuid.uuid4().hex[:10]


def write(folder: Path, name: str, text: str) -> Path:
    """Write a definition in one step (a reader never sees half a file)."""
    path = folder / name
    tmp = folder / f".{name}.tmp"
    tmp.write_text(text)
    tmp.replace(path)
    return path


def definition(hunt_id: str, *, body: str = "", schedule: str = "manual", title: str = "A hunt") -> str:
    return f"id: {hunt_id}\ntitle: {title}\nhypothesis: something suspicious happens\nschedule: {schedule}\n{body}"


def loaded(c: Any, hunt_id: str) -> dict[str, Any]:
    """Wait until the schedule's tick has read the hunt; its detail."""

    def get() -> dict[str, Any] | None:
        r = c.get(f"{HUNTS}/{hunt_id}")
        return r.json() if r.status_code == 200 else None

    return wait_for(get, timeout=10)


def ingest(c: Any, *events: dict[str, Any]) -> list[str]:
    """Ingest events each with an id; their ids, once the event search finds them all."""
    ids = []
    for ev in events:
        ev.setdefault("event_id", f"hunt-{uuid.uuid4().hex}")
        ids.append(ev["event_id"])
    r = c.post("/api/v1/ingest", json=list(events))
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return ids


def run(c: Any, hunt_id: str) -> dict[str, Any]:
    r = c.post(f"{HUNTS}/{hunt_id}/run")
    assert r.status_code == 200, r.text
    return r.json()["run"]
