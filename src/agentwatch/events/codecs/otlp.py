"""The OTLP codec: ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest`` in protobuf or JSON.

Both encodings are read into the same plain form (ids as lowercase hex, attribute values as
Python values), then :mod:`agentwatch.capture.otlp` maps the OpenTelemetry GenAI spans and
log records into OISP ``ai.*`` and ``agent.*`` events. Spans and logs that are not GenAI
telemetry are skipped (counted in ``Decoded``'s caller as neither accepted nor rejected).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentwatch.events.codecs import Decoded, Rejection
from agentwatch.events.codecs.framing import BodyError
from agentwatch.events.model import EventError
from agentwatch.events.normalize import TypeValidators, normalize

MAX_STRING = 256 * 1024
MAX_DEPTH = 16


# -- protobuf -> plain -----------------------------------------------------------
def _pb_value(v: AnyValue, depth: int = 0) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value[:MAX_STRING]
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value[:MAX_STRING]).decode()
    if depth > MAX_DEPTH:
        return None
    if kind == "array_value":
        return [_pb_value(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _pb_attrs(v.kvlist_value.values, depth + 1)
    return None


def _pb_attrs(kvs: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        if isinstance(kv, KeyValue):
            out[kv.key[:256]] = _pb_value(kv.value, depth)
    return out


def _resource_pb(res: Any) -> dict[str, Any]:
    return _pb_attrs(res.attributes)


def traces_from_protobuf(body: bytes) -> list[dict[str, Any]]:
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BodyError("body", f"not an OTLP ExportTraceServiceRequest ({exc})") from None
    spans = []
    for rs in req.resource_spans:
        resource = _resource_pb(rs.resource)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    {
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name[:1024],
                        "kind": s.kind,
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "attributes": _pb_attrs(s.attributes),
                        "events": [
                            {"name": e.name[:256], "time_ns": e.time_unix_nano, "attributes": _pb_attrs(e.attributes)}
                            for e in s.events
                        ],
                        "status": {"code": s.status.code, "message": s.status.message[:1024]},
                    }
                )
    return spans


def logs_from_protobuf(body: bytes) -> list[dict[str, Any]]:
    req = ExportLogsServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BodyError("body", f"not an OTLP ExportLogsServiceRequest ({exc})") from None
    records = []
    for rl in req.resource_logs:
        resource = _resource_pb(rl.resource)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                records.append(
                    {
                        "resource": resource,
                        "scope": sl.scope.name,
                        "time_ns": r.time_unix_nano or r.observed_time_unix_nano,
                        "trace_id": r.trace_id.hex(),
                        "span_id": r.span_id.hex(),
                        "event_name": getattr(r, "event_name", "")[:256],
                        "body": _pb_value(r.body),
                        "attributes": _pb_attrs(r.attributes),
                    }
                )
    return records


# -- OTLP/JSON -> plain -------------------------------------------------------------
def _js_value(v: Any, depth: int = 0) -> Any:
    if not isinstance(v, dict) or depth > MAX_DEPTH:
        return None
    if "stringValue" in v:
        return str(v["stringValue"])[:MAX_STRING]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            return None
    if "bytesValue" in v:
        return str(v["bytesValue"])[:MAX_STRING]
    if "arrayValue" in v:
        values = (v["arrayValue"] or {}).get("values") or []
        return [_js_value(x, depth + 1) for x in values if isinstance(values, list)]
    if "kvlistValue" in v:
        return _js_attrs((v["kvlistValue"] or {}).get("values"), depth + 1)
    return None


def _js_attrs(kvs: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs if isinstance(kvs, list) else []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"][:256]] = _js_value(kv.get("value"), depth)
    return out


def _hex_id(v: Any, size: int) -> str:
    """OTLP/JSON ids are hex; some exporters send base64 (protobuf JSON mapping): accept both."""
    if not isinstance(v, str) or not v:
        return ""
    s = v.strip().lower()
    if len(s) == size * 2 and all(c in "0123456789abcdef" for c in s):
        return s
    try:
        raw = base64.b64decode(v, validate=True)
    except ValueError:
        return ""
    return raw.hex() if len(raw) == size else ""


def _ns(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError("body", f"malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BodyError("body", "must be a JSON object (an OTLP export request)")
    return doc


def traces_from_json(body: bytes) -> list[dict[str, Any]]:
    doc = _load_json(body)
    spans = []
    for rs in doc.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            continue
        resource = _js_attrs((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            if not isinstance(ss, dict):
                continue
            scope = (ss.get("scope") or ss.get("instrumentationLibrary") or {}).get("name", "")
            for s in ss.get("spans") or []:
                if not isinstance(s, dict):
                    continue
                status = s.get("status") or {}
                spans.append(
                    {
                        "resource": resource,
                        "scope": str(scope)[:256],
                        "trace_id": _hex_id(s.get("traceId"), 16),
                        "span_id": _hex_id(s.get("spanId"), 8),
                        "parent_span_id": _hex_id(s.get("parentSpanId"), 8),
                        "name": str(s.get("name", ""))[:1024],
                        "kind": s.get("kind", 0),
                        "start_ns": _ns(s.get("startTimeUnixNano")),
                        "end_ns": _ns(s.get("endTimeUnixNano")),
                        "attributes": _js_attrs(s.get("attributes")),
                        "events": [
                            {
                                "name": str(e.get("name", ""))[:256],
                                "time_ns": _ns(e.get("timeUnixNano")),
                                "attributes": _js_attrs(e.get("attributes")),
                            }
                            for e in s.get("events") or []
                            if isinstance(e, dict)
                        ],
                        "status": {
                            "code": status.get("code", 0) if isinstance(status, dict) else 0,
                            "message": str(status.get("message", ""))[:1024] if isinstance(status, dict) else "",
                        },
                    }
                )
    return spans


def logs_from_json(body: bytes) -> list[dict[str, Any]]:
    doc = _load_json(body)
    records = []
    for rl in doc.get("resourceLogs") or []:
        if not isinstance(rl, dict):
            continue
        resource = _js_attrs((rl.get("resource") or {}).get("attributes"))
        for sl in rl.get("scopeLogs") or []:
            if not isinstance(sl, dict):
                continue
            scope = (sl.get("scope") or {}).get("name", "")
            for r in sl.get("logRecords") or []:
                if not isinstance(r, dict):
                    continue
                records.append(
                    {
                        "resource": resource,
                        "scope": str(scope)[:256],
                        "time_ns": _ns(r.get("timeUnixNano")) or _ns(r.get("observedTimeUnixNano")),
                        "trace_id": _hex_id(r.get("traceId"), 16),
                        "span_id": _hex_id(r.get("spanId"), 8),
                        "event_name": str(r.get("eventName", ""))[:256],
                        "body": _js_value(r.get("body")),
                        "attributes": _js_attrs(r.get("attributes")),
                    }
                )
    return records


def is_protobuf(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct in ("application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf")


@dataclass
class OtlpCodec:
    """Decodes OTLP export requests; ``signal`` in :meth:`decode_signal` is "traces" or "logs"."""

    type_validator: TypeValidators
    max_items: int = 10_000
    redaction: str = "safe"
    name: str = "otlp"

    def decode(self, body: bytes, content_type: str) -> Decoded:
        return self.decode_signal(body, content_type, "traces")

    def decode_signal(self, body: bytes, content_type: str, signal: str) -> Decoded:
        from agentwatch.capture import otlp as mapping

        if not body.strip():
            raise BodyError("body", "is empty")
        proto = is_protobuf(content_type)
        if signal == "traces":
            items = traces_from_protobuf(body) if proto else traces_from_json(body)
            kind = "span"
        else:
            items = logs_from_protobuf(body) if proto else logs_from_json(body)
            kind = "log record"
        if len(items) > self.max_items:
            raise BodyError("body", f"more than {self.max_items} {kind}s in one request", status=413)
        bodies = (
            mapping.map_spans(items, self.redaction) if signal == "traces" else mapping.map_logs(items, self.redaction)
        )
        out = Decoded()
        for index, item in bodies:
            try:
                out.events.append(normalize(item, type_validator=self.type_validator, source_format="otlp"))
            except EventError as exc:
                out.rejected.append(Rejection(index, exc.field, exc.rule))
        return out
