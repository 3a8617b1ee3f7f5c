"""One run of a hunt: its query through agentwatch's own event search, its indicators, its result.

The query's filters go to :func:`agentwatch.api.v1_events.search`, the function behind ``GET
/api/v1/events``, over the hunt's window up to the run's start, newest first, a page at a time
and at most ``hunts.max_scan`` events. Without indicators, every event the query selects is a
match. With indicators, a match is an event of the query that names one of them as an entity
(the ids :func:`agentwatch.detect.queries.entity_ids_for` gives the value) or holds it as text
(the event search's own text rule: A-Z in any case, the rest exactly). The run keeps the
counts, the first ``hunts.max_ids`` matched event ids and entities, and its error, if any (the
time limit ``hunts.run_timeout_s`` is checked between pages; a run past it keeps what it found).
The pages are read from one snapshot of the store, so events stored during a run (an agent's
events arrive late, older than the run's start) neither repeat a page's events nor hide others.
Between pages the run also renews its lease (``keep``); a run that lost it to another node stops
the same way, so two nodes never go on running one hunt. The selection is counted once, with
the first page (``query_total``): the later pages of the same snapshot are read without a count.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agentwatch.api.v1_events import event_json, search
from agentwatch.detect.coverage import TACTICS
from agentwatch.detect.hunt import applied
from agentwatch.detect.queries import entity_ids_for
from agentwatch.events.model import Event, iso, parse_ts
from agentwatch.hunts.definition import Hunt
from agentwatch.hunts.settings import HuntSettings
from agentwatch.hunts.store import Run
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.events import ASCII_FOLD, EventQuery, query_rows, stored_form
from agentwatch.store.snapshot import snapshot

log = structlog.get_logger("agentwatch.hunts")

PAGE = 1_000
ALERT_EVENTS = 100  # events named by a hunt's alert


class Needle:
    """One indicator, ready to be met: its entity ids and its text as a stored body spells it."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.ids = frozenset(entity_ids_for(value))
        self.text = stored_form(value).translate(ASCII_FOLD)

    def meets(self, entity_ids: set[str], folded_body: str) -> bool:
        return not self.ids.isdisjoint(entity_ids) or self.text in folded_body


def _page(hunt: Hunt, since: float, until: float, offset: int, limit: int) -> EventQuery:
    f = hunt.definition.query
    return EventQuery(
        limit=limit,
        offset=offset,
        event_type=f.template_id,
        since=since,
        until=until,
        source_format=f.source,
        min_severity=f.severity,
        text=f.q,
    )


class LeaseLost(Exception):
    """Another node took the hunt's lease over while this run went on."""


def execute(
    engine: Engine, hunt: Hunt, settings: HuntSettings, trigger: str, keep: Callable[[], bool] | None = None
) -> tuple[Run, list[Event]]:
    """Run ``hunt`` now; the run (not yet stored) and the matched events an alert would name.
    ``keep`` renews the run's lease before each page (False: the lease is lost, the run stops)."""
    d = hunt.definition
    started = time.time()
    deadline = time.monotonic() + settings.run_timeout_s
    since = started - d.window_s(settings.default_window_s)
    run = Run(id=str(uuid.uuid4()), hunt_id=d.id, definition_hash=hunt.digest, trigger=trigger, started_at=started)
    needles = [Needle(v) for v in d.indicators]
    met: Counter[str] = Counter()
    ids: list[str] = []
    entities: dict[str, dict[str, str]] = {}
    alert_events: list[Event] = []
    matched = 0
    entity_id: str | None = None
    try:
        with snapshot(engine) as conn:  # every page from one snapshot: late events shift no offset
            while run.scanned < settings.max_scan:
                if time.monotonic() > deadline:
                    raise TimeoutError
                if keep is not None and not keep():
                    raise LeaseLost
                limit = min(PAGE, settings.max_scan - run.scanned)
                page = _page(hunt, since, started, run.scanned, limit)
                if run.scanned == 0:  # counted once: the snapshot's selection does not change
                    # the entity id: of the kind of the entity value that had events
                    rows, run.query_total, entity_id = search(conn, page, d.query.entity)
                else:
                    page.entity_id = entity_id
                    rows = [event_json(r) for r in query_rows(conn, page, with_total=False)[0]]
                run.scanned += len(rows)
                for ev in rows:
                    if needles:
                        ent_ids = {e.get("id", "") for e in ev["entities"]}
                        body = orjson.dumps(ev["body"]).decode().translate(ASCII_FOLD)
                        hit = [n.value for n in needles if n.meets(ent_ids, body)]
                        if not hit:
                            continue
                        met.update(hit)
                    matched += 1
                    if len(ids) < settings.max_ids:
                        ids.append(ev["id"])
                    for e in ev["entities"]:
                        if len(entities) < settings.max_ids and "id" in e:
                            entities.setdefault(
                                e["id"], {"id": e["id"], "type": e.get("type"), "value": e.get("value")}
                            )
                    if len(alert_events) < ALERT_EVENTS:
                        alert_events.append(_event(ev))
                if len(rows) < limit:
                    break
    except TimeoutError:
        run.status, run.error = "error", f"stopped after hunts.run_timeout_s ({settings.run_timeout_s:g} s)"
    except LeaseLost:
        run.status, run.error = "error", "lease: another node took the hunt over (the lease expired); stopped"
    except SQLAlchemyError as exc:
        log.warning("hunts.run_failed", hunt=d.id, error=type(exc).__name__)
        run.status, run.error = "error", f"store: the search failed ({type(exc).__name__})"
    run.matched = matched if needles else max(matched, run.query_total)
    run.finished_at = time.time()
    run.body = {
        "window": {"since": iso(since), "until": iso(started)},
        "filters": applied(d.query.model_copy(update={"window_minutes": None}), started),
        "truncated": run.scanned < run.query_total,
        "indicators": [{"value": n.value, "matched": met[n.value]} for n in needles],
        "event_ids": ids,
        "entities": list(entities.values()),
    }
    return run, alert_events


def _event(ev: dict[str, Any]) -> Event:
    """The parts of a found event an alert keeps (its id, type, time and entities)."""
    ts = parse_ts(ev["ts"])
    return Event(
        body={},
        event_id=ev["id"],
        event_type=ev["event_type"],
        ts=ts,
        received_at=ts,
        session_id=ev["session_id"],
        entities=[e for e in ev["entities"] if "id" in e],
    )


def _attack_tags(mitre: list[str]) -> list[str]:
    tags = []
    for tag in mitre:
        if tag.startswith("TA"):
            tags += [f"attack.{t.shortname}" for t in TACTICS if t.id == tag and not t.retired]
        else:
            tags.append(f"attack.{tag.lower()}")
    return tags


def finding(hunt: Hunt, run: Run, events: list[Event], severity: int) -> Finding:
    """The alert of a run with matches: type ``hunt``, one dedup key per hunt (repeats of one
    hunt within the dedup window merge into one alert), at the time of the newest match."""
    d = hunt.definition
    return Finding(
        detector="hunts",
        rule_id=f"hunt:{d.id}",
        title=f"Hunt matched: {d.title}",
        severity=severity,
        events=events,
        alert_type="hunt",
        message=f"hunt {d.id} matched {run.matched} event(s): {d.hypothesis}"[:4000],
        tags=["hunt", *_attack_tags(d.mitre)],
        dedup_key=f"hunt:{d.id}",
        ts=max((e.ts for e in events), default=run.started_at),
        details={"hunt": {"id": d.id, "run_id": run.id, "definition_hash": hunt.digest, "matched": run.matched}},
    )
