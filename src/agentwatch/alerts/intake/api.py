"""AiSOC's alert intake: ``POST /api/v1/alerts/submit`` (a batch of OCSF events made into one
alert), ``POST /api/v1/alerts`` (alerts from outside tools) and ``POST /api/v1/ingest/ocsf``
(OCSF events ingested like any other format).

Submit: at most 200 events, 64 KiB each, 1 MiB in all, gzipped or not (each refused with a
413 naming the rule); one bad event, or two with one id, refuses the whole submission (400,
every bad event named by index, OCSF field and rule), so an alert never names half a batch;
events the runtime process filter drops are left out of it (422 when that is all of them).
Event times outside the sane window
(30 days back, 5 minutes ahead) are clamped to it and listed in the answer. Events without
``metadata.uid`` get ids derived from the body, so sending the same body again repeats the
same events and the same alert (counted once more by the recorder's dedup) instead of new
ones. An ``Idempotency-Key`` header (1-128 of ``A-Z a-z 0-9 . _ : -``, per caller) goes further:
a retry is answered with the first answer, kept in the store for a day; the same key with
another body is a 409.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts.intake import idempotency as submit_keys
from agentwatch.alerts.intake.models import MAX_ALERTS, MAX_SUBMIT_EVENTS, AlertIn, AlertsIn, SubmitBody, SubmitMeta
from agentwatch.alerts.intake.submit import Window, clamp_note, commit, held, record
from agentwatch.alerts.model import MAX_EVENT_IDS
from agentwatch.api.bodies import json_body_doc, read_events_body, read_limited
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, TooLarge
from agentwatch.api.ingest import decode_with, submit_decoded
from agentwatch.api.query import only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import principal_name, require
from agentwatch.events.codecs.framing import UTF8_BOM
from agentwatch.events.entities import canonical_address, canonical_domain, entity_id
from agentwatch.events.model import Event, EventError, parse_ts
from agentwatch.pipeline.pipeline import Finding

router = APIRouter(prefix="/api/v1", tags=["alerts"])

SUBMIT_NS = uuid.UUID("a7d3c1e2-5b84-4f0e-9c61-2f8e4b7d0a93")
MAX_SUBMIT_BODY = 1024 * 1024
MAX_SUBMIT_EVENT = 64 * 1024
MAX_ALERTS_BODY = 512 * 1024
MAX_ERRORS = 200
KEY_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
KEY_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ : -"
EVENTS_WHY = "the submitted events are stored as ingested events are"
FILTERED_WHY = "the runtime process filter (GET /api/filters) dropped every event"


def _json(raw: bytes) -> Any:
    raw = raw.removeprefix(UTF8_BOM)  # JSON parsers may ignore a BOM (RFC 8259, 8.1), ingest does
    if not raw.strip():
        raise InvalidRequest("body: a JSON object is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})") from None


def _model(model: type[BaseModel], doc: Any, prefix: str = "") -> Any:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        problems = [
            {"field": prefix + ".".join(str(p) for p in err.get("loc", ())) or "body", "rule": err.get("msg", "")}
            for err in exc.errors()
        ]
        raise InvalidRequest(f"{problems[0]['field']}: {problems[0]['rule']}", problems) from None


def _who(request: Request) -> str:
    """The caller a key belongs to (``user:<id>``, ``api_key:<id>``; ``anonymous`` with auth off)."""
    return principal_name(request, "anonymous")[:200]


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and KEY_RE.fullmatch(key) is None:
        raise InvalidRequest(f"header idempotency-key: {KEY_RULE}")
    return key


def _submission(raw: bytes) -> tuple[SubmitMeta, list[Any]]:
    """The alert fields and the events of a submit body; the count and size caps first."""
    doc = _json(raw)
    if isinstance(doc, list):
        doc = {"events": doc}
    if not isinstance(doc, dict):
        raise InvalidRequest("body: must be a JSON object with events, or a JSON array of OCSF events")
    items = doc.pop("events", None)
    if not isinstance(items, list) or not items:
        raise InvalidRequest("events: is required: a list of 1-200 OCSF events")
    if len(items) > MAX_SUBMIT_EVENTS:
        raise TooLarge(f"events: more than {MAX_SUBMIT_EVENTS} events in one submission ({len(items)})")
    for i, item in enumerate(items):
        try:
            size = len(orjson.dumps(item))
        except TypeError:
            continue  # not storable: refused by the codec with its reason
        if size > MAX_SUBMIT_EVENT:
            raise TooLarge(f"events[{i}]: larger than {MAX_SUBMIT_EVENT} bytes ({size})")
    return _model(SubmitMeta, doc), items


def _events(request: Request, items: list[Any], digest: str, window: Window) -> tuple[list[Event], list[dict]]:
    """The submitted OCSF events as canonical ones, and the times clamped; 400 naming every bad one."""
    codec = request.app.state.aw.codecs["ocsf"]
    events: list[Event] = []
    problems: list[dict[str, Any]] = []
    clamped: list[dict[str, Any]] = []
    first_of: dict[str, int] = {}  # event id -> the index that gave it first
    for i, item in enumerate(items):
        try:
            default_id = str(uuid.uuid5(SUBMIT_NS, f"{digest}:{i}"))
            event = codec.event(item, window.now, default_id=default_id, clamp=window.clamp)
        except EventError as exc:
            problems.append({"index": i, "field": f"events[{i}].{exc.field}", "rule": exc.rule})
            continue
        # a second event with the id of another would be counted a duplicate and never stored
        first = first_of.setdefault(event.event_id, i)
        if first != i:
            problems.append(
                {"index": i, "field": f"events[{i}].metadata.uid", "rule": f"repeats the id of events[{first}]"}
            )
            continue
        if item["time"] / 1000 != event.ts:
            clamped.append(clamp_note(i, "time", item["time"], event.ts))
        events.append(event)
    if problems:
        first = problems[0]
        raise InvalidRequest(f"{first['field']}: {first['rule']}", problems[:MAX_ERRORS])
    return events, clamped


def _details(ids: list[str]) -> dict[str, Any]:
    """The alert's details: how many events, and the ids past the ones an alert names itself."""
    details: dict[str, Any] = {"source": "alerts/submit", "event_count": len(ids)}
    if len(ids) > MAX_EVENT_IDS:
        details["more_event_ids"] = ids[MAX_EVENT_IDS:]
    return details


async def _claim(request: Request, key: str, digest: str, now: float) -> submit_keys.Claim:
    engine = request.app.state.aw.engine
    claim = await run_in_threadpool(submit_keys.claim, engine, _who(request), key, digest, now)
    if claim.outcome == "mismatch":
        raise Conflict("header idempotency-key: already used with a different body")
    if claim.outcome == "busy":
        raise Conflict(
            "header idempotency-key: a request with this key is being processed; retry later",
            headers={"Retry-After": "2"},
        )
    return claim


@router.post(
    "/alerts/submit",
    dependencies=[require("alerts:write", also={"events:write": EVENTS_WHY}), only_query()],
    openapi_extra=json_body_doc(SubmitBody),
    status_code=201,
)
async def submit_alert(request: Request) -> JSON:
    """Store a batch of OCSF events and make one alert naming them and their entities."""
    key = _idempotency_key(request)
    raw = await read_events_body(request, MAX_SUBMIT_BODY)  # 1 MiB whether sent gzipped or not
    digest = hashlib.sha256(raw).hexdigest()
    meta, items = _submission(raw)
    window = Window()
    events, clamped = _events(request, items, digest, window)
    if key is not None:
        claim = await _claim(request, key, digest, window.now)
        if claim.outcome == "done":
            return JSON(claim.answer, status_code=claim.status, headers={"Idempotent-Replayed": "true"})
    engine, who = request.app.state.aw.engine, _who(request)
    try:
        counts = await commit(request, events, "ocsf")
        named = await held(request, events, counts)
        if not named:
            raise ApiError(f"events: none was stored: {FILTERED_WHY}", status=422)
        ids = [e.event_id for e in named]
        finding = Finding(
            detector="aisoc.submit",
            rule_id=meta.rule_id,
            title=meta.title,
            severity=meta.severity if meta.severity is not None else max(e.severity for e in named),
            events=named,
            alert_type=meta.type,
            message=meta.description or meta.title,
            tags=list(meta.tags),
            dedup_key=f"submit:{digest}",
            ts=max(e.ts for e in named),
            details=_details(ids),
        )
        alert, is_new = await record(request, finding)
    except BaseException:
        if key is not None:
            await run_in_threadpool(submit_keys.release, engine, who, key)
        raise
    answer = {"alert": alert, "events": counts, "event_ids": ids, "clamped": clamped, "time_window": window.as_dict()}
    status = 201 if is_new else 200
    if key is not None:
        await run_in_threadpool(submit_keys.finish, engine, who, key, status, answer, time.time())
    return JSON(answer, status_code=status)


# -- alerts from outside tools --------------------------------------------------------------

OCSF_SEVERITY = (0, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6)  # agentwatch 0-10 -> OCSF severity_id


def _entity(kind: str, value: str) -> dict[str, str]:
    if kind == "ip":
        value = canonical_address(value) or value
    elif kind == "domain":
        value = canonical_domain(value)
    return {"type": kind, "value": value, "id": entity_id(kind, value)}


def _record_event(request: Request, alert: AlertIn, window: Window, ts: float) -> Event:
    """The alert as an OCSF Detection Finding event (stored, so the alert names a real event)."""
    finding_info: dict[str, Any] = {"title": alert.title}
    if alert.external_id:
        finding_info["uid"] = alert.external_id
    doc: dict[str, Any] = {
        "class_uid": 2004,
        "activity_id": 1,
        "time": int(ts * 1000),
        "severity_id": OCSF_SEVERITY[alert.severity],
        "finding_info": finding_info,
        "metadata": {"product": {"name": alert.source}},
    }
    if alert.description:
        doc["message"] = alert.description
    known = f"{alert.source}\x1f{alert.external_id}" if alert.external_id else None
    event_id = str(uuid.uuid5(SUBMIT_NS, known)) if known else None
    event = request.app.state.aw.codecs["ocsf"].event(doc, window.now, default_id=event_id)
    named = (_entity(e.type, e.value) for e in alert.entities)  # once each, however it was spelled
    event.entities = list({e["id"]: e for e in named}.values())
    return event


def _alerts(raw: bytes) -> tuple[list[AlertIn], bool]:
    doc = _json(raw)
    single = isinstance(doc, dict) and "alerts" not in doc
    if isinstance(doc, list):
        doc = {"alerts": doc}
    elif single:
        return [_model(AlertIn, doc)], True
    if not isinstance(doc, dict):
        raise InvalidRequest('body: must be an alert object, {"alerts": [...]} or a JSON array of alerts')
    items = doc.get("alerts")
    if isinstance(items, list) and len(items) > MAX_ALERTS:
        raise TooLarge(f"alerts: more than {MAX_ALERTS} alerts in one request ({len(items)})")
    return list(_model(AlertsIn, doc).alerts), False


@router.post(
    "/alerts",
    dependencies=[require("alerts:write"), only_query()],
    openapi_extra=json_body_doc(AlertsIn),
    status_code=201,
)
async def ingest_alerts(request: Request) -> JSON:
    """Record alerts from an outside tool (deduplicated as any alert); answers the stored alert(s)."""
    alerts, single = _alerts(await read_limited(request, MAX_ALERTS_BODY))
    window = Window()
    pairs: list[tuple[AlertIn, Event]] = []
    for i, alert in enumerate(alerts):
        prefix = "" if single else f"alerts[{i}]."
        try:
            given = parse_ts(alert.observed_at, "observed_at") if alert.observed_at else window.now
        except EventError as exc:
            raise InvalidRequest(f"{prefix}{exc.field}: {exc.rule}") from None
        pairs.append((alert, _record_event(request, alert, window, window.clamp(given))))
    await commit(request, [event for _, event in pairs], "alerts")
    out: list[dict[str, Any]] = []
    any_new = False
    for alert, event in pairs:
        ids = ",".join(sorted(e["id"] for e in event.entities))
        finding = Finding(
            detector=f"external:{alert.source}"[:128],
            rule_id=alert.rule_id or alert.source,
            title=alert.title,
            severity=alert.severity,
            events=[event],
            alert_type=alert.type,
            message=alert.description or alert.title,
            tags=list(alert.tags),
            dedup_key=f"external:{alert.source}:{ids}",
            ts=event.ts,
            details={"source": alert.source, **({"external_id": alert.external_id} if alert.external_id else {})},
        )
        doc, is_new = await record(request, finding)
        any_new = any_new or is_new
        out.append(doc)
    status = 201 if any_new else 200
    return JSON(out[0] if single else {"alerts": out}, status_code=status)


# -- OCSF as an ingest format ---------------------------------------------------------------


@router.post("/ingest/ocsf", dependencies=[require("events:write", open_on_loopback=True), only_query()])
async def ingest_ocsf(request: Request) -> JSON:
    """OCSF events (one, a JSON array, or NDJSON; gzip allowed); answers as ``/api/v1/ingest``."""
    aw = request.app.state.aw
    body = await read_events_body(request, aw.settings.ingest.max_body_bytes)
    decoded = await decode_with(aw, aw.codecs["ocsf"].decode, body, request.headers.get("content-type", ""))
    return JSON(await submit_decoded(request, decoded, "ocsf"))
