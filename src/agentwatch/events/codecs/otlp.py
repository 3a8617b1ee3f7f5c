"""The OTLP codec: ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest`` in protobuf or JSON.

Both encodings are read into the same plain form (ids as lowercase hex, attribute values as
Python values), then :mod:`agentwatch.capture.otlp` maps the OpenTelemetry GenAI spans and
log records into OISP ``ai.*`` and ``agent.*`` events. Spans and logs that are not GenAI
telemetry are skipped (counted in ``Decoded``'s caller as neither accepted nor rejected).

Validation: every structural field of the OTLP/JSON encoding is type-checked (lists are
lists, objects are objects, strings are strings, integers are integers in the range their
protobuf type allows, timestamps are nanoseconds since the epoch that fit ``fixed64``), and
the mapping checks the values it turns into numbers (pid, token counts). A request that breaks
a rule is refused as a whole with a 400 naming the field by its OTLP/JSON path (for example
``resourceSpans[0].scopeSpans: must be a list``, ``...spans[2].attributes[process.pid].value.
intValue: ...``; attributes are named by their key once the key is known, by their index
before). Nothing of a refused request is stored, so nothing that was accepted is lost.
JSON ``null`` stands for an absent field, as in the protobuf JSON mapping.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentwatch.events.codecs import Decoded, Rejection
from agentwatch.events.codecs.framing import BodyError, check_json_values
from agentwatch.events.codecs.otlp_wire import check_message_count
from agentwatch.events.model import EventError
from agentwatch.events.normalize import TypeValidators, normalize

MAX_STRING = 256 * 1024
MAX_DEPTH = 16
MAX_KEY = 256
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Timestamps are ``fixed64`` nanoseconds since the Unix epoch: 0 (unset) up to 2**64-1, which is
# in the year 2554, well inside what a datetime can hold (before 1970 or past it is refused).
MAX_NS = 2**64 - 1
INTEGER_TEXT = re.compile(r"-?[0-9]+")
SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


@dataclass
class Plain:
    """Decoded spans or log records in the plain form, with where each came from in the request."""

    items: list[dict[str, Any]] = field(default_factory=list)
    paths: list[tuple[str, str]] = field(default_factory=list)  # (item path, its resource's path)
    # Refused as soon as one more is found, before it is read into the plain form: 5 million
    # empty spans fit in 10 MiB of protobuf and took 6 GiB once read, only to be refused after.
    max_items: int | None = None
    kind: str = "item"

    def add(self, item: dict[str, Any], path: str, resource_path: str) -> None:
        self.check_room()
        self.items.append(item)
        self.paths.append((path, resource_path))

    def check_room(self) -> None:
        if self.max_items is not None and len(self.items) >= self.max_items:
            raise BodyError("body", f"more than {self.max_items} {self.kind}s in one request", status=413)

    def where(self, index: int, rel: str) -> str:
        """The request path of ``rel``, a field named relative to item ``index`` (``resource.`` for its resource)."""
        path, resource_path = self.paths[index] if 0 <= index < len(self.paths) else ("item", "resource")
        if rel == "resource" or rel.startswith("resource."):
            return resource_path + rel[len("resource") :]
        return f"{path}.{rel}" if rel else path


def _key_path(path: str, key: str) -> str:
    return f"{path}[{key[:128]}]"


# -- protobuf -> plain -----------------------------------------------------------
def _pb_value(v: AnyValue, path: str, depth: int = 0) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value[:MAX_STRING]
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value  # int64: always in range
    if kind == "double_value":
        return v.double_value
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value[:MAX_STRING]).decode()
    if depth >= MAX_DEPTH:
        raise BodyError(path, f"nested deeper than {MAX_DEPTH} levels")
    if kind == "array_value":
        return [_pb_value(x, f"{path}.arrayValue.values[{i}]", depth + 1) for i, x in enumerate(v.array_value.values)]
    if kind == "kvlist_value":
        return _pb_attrs(v.kvlist_value.values, f"{path}.kvlistValue.values", depth + 1)
    return None


def _pb_attrs(kvs: Any, path: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        if isinstance(kv, KeyValue):
            out[kv.key[:MAX_KEY]] = _pb_value(kv.value, _key_path(path, kv.key) + ".value", depth)
    return out


def _pb_records(
    req: Any, body: bytes, what: str, groups: str, scopes: str, items: str
) -> Iterator[tuple[dict[str, Any], str, Any, str, str]]:
    """Parse ``body`` into ``req`` and walk it: ``(resource attributes, scope name, record,
    record path, resource path)`` for every span or log record, paths in OTLP/JSON names
    (``groups``, ``scopes`` and ``items`` are the protobuf field names)."""
    check_message_count(body, what)
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BodyError("body", f"not an OTLP {what} ({exc})") from None
    group_key, scope_key, item_key = (_camel(n) for n in (groups, scopes, items))
    for i, group in enumerate(getattr(req, groups)):
        rpath = f"{group_key}[{i}]"
        resource = _pb_attrs(group.resource.attributes, f"{rpath}.resource.attributes")
        for j, scoped in enumerate(getattr(group, scopes)):
            for k, record in enumerate(getattr(scoped, items)):
                path = f"{rpath}.{scope_key}[{j}].{item_key}[{k}]"
                yield resource, scoped.scope.name[:256], record, path, rpath


def _camel(name: str) -> str:
    """A protobuf field name as the protobuf JSON mapping spells it (``scope_spans`` -> ``scopeSpans``)."""
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def traces_from_protobuf(body: bytes, max_items: int | None = None) -> Plain:
    out = Plain(max_items=max_items, kind="span")
    records = _pb_records(
        ExportTraceServiceRequest(), body, "ExportTraceServiceRequest", "resource_spans", "scope_spans", "spans"
    )
    for resource, scope, s, path, rpath in records:
        out.check_room()
        item = {
            "resource": resource,
            "scope": scope,
            "trace_id": s.trace_id.hex(),
            "span_id": s.span_id.hex(),
            "parent_span_id": s.parent_span_id.hex(),
            "name": s.name[:1024],
            "kind": s.kind,
            "start_ns": s.start_time_unix_nano,
            "end_ns": s.end_time_unix_nano,
            "attributes": _pb_attrs(s.attributes, f"{path}.attributes"),
            "events": [
                {
                    "name": e.name[:256],
                    "time_ns": e.time_unix_nano,
                    "attributes": _pb_attrs(e.attributes, f"{path}.events[{n}].attributes"),
                }
                for n, e in enumerate(s.events)
            ],
            "status": {"code": s.status.code, "message": s.status.message[:1024]},
        }
        out.add(item, path, f"{rpath}.resource")
    return out


def logs_from_protobuf(body: bytes, max_items: int | None = None) -> Plain:
    out = Plain(max_items=max_items, kind="log record")
    records = _pb_records(
        ExportLogsServiceRequest(), body, "ExportLogsServiceRequest", "resource_logs", "scope_logs", "log_records"
    )
    for resource, scope, r, path, rpath in records:
        out.check_room()
        item = {
            "resource": resource,
            "scope": scope,
            "time_ns": r.time_unix_nano or r.observed_time_unix_nano,
            "trace_id": r.trace_id.hex(),
            "span_id": r.span_id.hex(),
            "event_name": getattr(r, "event_name", "")[:256],
            "body": _pb_value(r.body, f"{path}.body"),
            "attributes": _pb_attrs(r.attributes, f"{path}.attributes"),
        }
        out.add(item, path, f"{rpath}.resource")
    return out


# -- OTLP/JSON -> plain -------------------------------------------------------------
def _obj(v: Any, path: str, *, required: bool = False) -> dict[str, Any]:
    """An object field; ``null`` / absent is an empty object unless ``required`` (list elements)."""
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise BodyError(path, "must be an object")
    return v


def _list(v: Any, path: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise BodyError(path, "must be a list")
    return v


def _str(v: Any, path: str, limit: int) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise BodyError(path, "must be a string")
    return v[:limit]


def _integer(v: Any, path: str, what: str) -> int:
    """An integer given as a JSON number or a decimal string (the protobuf JSON mapping allows both)."""
    if isinstance(v, bool):
        raise BodyError(path, f"must be {what}")
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise BodyError(path, "out of range")
        if not v.is_integer():
            raise BodyError(path, f"must be {what}")
        return int(v)
    if isinstance(v, str) and INTEGER_TEXT.fullmatch(v.strip()):
        digits = v.strip()
        if len(digits) > 40:  # far outside every range checked here; int() of it is not worth the work
            raise BodyError(path, "out of range")
        return int(digits)
    raise BodyError(path, f"must be {what}")


def _ns(v: Any, path: str) -> int:
    if v is None:
        return 0
    n = _integer(v, path, "an integer (nanoseconds since the Unix epoch)")
    if not 0 <= n <= MAX_NS:
        raise BodyError(path, "out of range")
    return n


def _enum(v: Any, path: str, names: dict[str, int]) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and not INTEGER_TEXT.fullmatch(v.strip()):
        if v not in names:
            raise BodyError(path, f"must be one of {', '.join(names)} or its number")
        return names[v]
    n = _integer(v, path, "an integer or an enum name")
    if not 0 <= n <= 2**31 - 1:
        raise BodyError(path, "out of range")
    return n


def _double(v: Any, path: str) -> float:
    if isinstance(v, bool):
        raise BodyError(path, "must be a number")
    if isinstance(v, int | float):
        return float(v)  # an int from JSON is at most ~1e19 digits long here: orjson reads longer ones as floats
    if isinstance(v, str) and len(v) <= 64:
        try:
            return float(v)  # also "NaN", "Infinity", "-Infinity", as the protobuf JSON mapping writes them
        except ValueError:
            pass
    raise BodyError(path, "must be a number")


def _js_value(v: Any, path: str, depth: int = 0) -> Any:
    """An OTLP ``AnyValue`` in its JSON form."""
    if v is None:
        return None
    if not isinstance(v, dict):
        raise BodyError(path, "must be an object (an OTLP AnyValue)")
    if v.get("stringValue") is not None:
        return _str(v["stringValue"], f"{path}.stringValue", MAX_STRING)
    if v.get("boolValue") is not None:
        if not isinstance(v["boolValue"], bool):
            raise BodyError(f"{path}.boolValue", "must be true or false")
        return v["boolValue"]
    if v.get("intValue") is not None:
        p = f"{path}.intValue"
        n = _integer(v["intValue"], p, "an integer (a number or a decimal string)")
        if not INT64_MIN <= n <= INT64_MAX:
            raise BodyError(p, "out of the signed 64-bit range")
        return n
    if v.get("doubleValue") is not None:
        return _double(v["doubleValue"], f"{path}.doubleValue")
    if v.get("bytesValue") is not None:
        return _str(v["bytesValue"], f"{path}.bytesValue", MAX_STRING)
    if v.get("arrayValue") is not None or v.get("kvlistValue") is not None:
        if depth >= MAX_DEPTH:
            raise BodyError(path, f"nested deeper than {MAX_DEPTH} levels")
        if v.get("arrayValue") is not None:
            p = f"{path}.arrayValue"
            values = _list(_obj(v["arrayValue"], p).get("values"), f"{p}.values")
            return [_js_value(x, f"{p}.values[{i}]", depth + 1) for i, x in enumerate(values)]
        p = f"{path}.kvlistValue"
        return _js_attrs(_obj(v["kvlistValue"], p).get("values"), f"{p}.values", depth + 1)
    return None


def _js_attrs(kvs: Any, path: str, depth: int = 0) -> dict[str, Any]:
    """A list of OTLP ``KeyValue``; named ``path[index]`` until the key is known, ``path[key]`` after."""
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(kvs, path)):
        if not isinstance(kv, dict):
            raise BodyError(f"{path}[{i}]", "must be an object (an OTLP KeyValue)")
        key = kv.get("key")
        if not isinstance(key, str):
            raise BodyError(f"{path}[{i}].key", "must be a string")
        out[key[:MAX_KEY]] = _js_value(kv.get("value"), _key_path(path, key) + ".value", depth)
    return out


def _hex_id(v: Any, size: int, path: str) -> str:
    """OTLP/JSON ids are hex; some exporters send base64 (protobuf JSON mapping): accept both."""
    if v is None or v == "":
        return ""
    rule = f"must be {size * 2} hex digits (or {size} bytes in base64)"
    if not isinstance(v, str) or len(v) > size * 4:
        raise BodyError(path, rule)
    s = v.strip().lower()
    if len(s) == size * 2 and all(c in "0123456789abcdef" for c in s):
        return s
    try:
        raw = base64.b64decode(v, validate=True)
    except ValueError:
        raise BodyError(path, rule) from None
    if len(raw) != size:
        raise BodyError(path, rule)
    return raw.hex()


def _load_json(body: bytes) -> dict[str, Any]:
    check_json_values(body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError("body", f"malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BodyError("body", "must be a JSON object (an OTLP export request)")
    return doc


def _js_resource(rs: dict[str, Any], rpath: str) -> dict[str, Any]:
    resource = _obj(rs.get("resource"), f"{rpath}.resource")
    return _js_attrs(resource.get("attributes"), f"{rpath}.resource.attributes")


def _js_scope(parent: dict[str, Any], key: str, spath: str) -> str:
    scope = _obj(parent.get(key), f"{spath}.{key}")
    return _str(scope.get("name"), f"{spath}.{key}.name", 256)


def traces_from_json(body: bytes, max_items: int | None = None) -> Plain:
    doc = _load_json(body)
    out = Plain(max_items=max_items, kind="span")
    for i, rs in enumerate(_list(doc.get("resourceSpans"), "resourceSpans")):
        rpath = f"resourceSpans[{i}]"
        rs = _obj(rs, rpath, required=True)
        resource = _js_resource(rs, rpath)
        # instrumentationLibrarySpans: the name before OTLP 0.15, still sent by old exporters
        skey = "scopeSpans" if rs.get("scopeSpans") is not None else "instrumentationLibrarySpans"
        for j, ss in enumerate(_list(rs.get(skey), f"{rpath}.{skey}")):
            spath = f"{rpath}.{skey}[{j}]"
            ss = _obj(ss, spath, required=True)
            scope = _js_scope(ss, "scope" if skey == "scopeSpans" else "instrumentationLibrary", spath)
            for k, s in enumerate(_list(ss.get("spans"), f"{spath}.spans")):
                path = f"{spath}.spans[{k}]"
                s = _obj(s, path, required=True)
                status = _obj(s.get("status"), f"{path}.status")
                events = []
                for n, e in enumerate(_list(s.get("events"), f"{path}.events")):
                    epath = f"{path}.events[{n}]"
                    e = _obj(e, epath, required=True)
                    events.append(
                        {
                            "name": _str(e.get("name"), f"{epath}.name", 256),
                            "time_ns": _ns(e.get("timeUnixNano"), f"{epath}.timeUnixNano"),
                            "attributes": _js_attrs(e.get("attributes"), f"{epath}.attributes"),
                        }
                    )
                item = {
                    "resource": resource,
                    "scope": scope,
                    "trace_id": _hex_id(s.get("traceId"), 16, f"{path}.traceId"),
                    "span_id": _hex_id(s.get("spanId"), 8, f"{path}.spanId"),
                    "parent_span_id": _hex_id(s.get("parentSpanId"), 8, f"{path}.parentSpanId"),
                    "name": _str(s.get("name"), f"{path}.name", 1024),
                    "kind": _enum(s.get("kind"), f"{path}.kind", SPAN_KINDS),
                    "start_ns": _ns(s.get("startTimeUnixNano"), f"{path}.startTimeUnixNano"),
                    "end_ns": _ns(s.get("endTimeUnixNano"), f"{path}.endTimeUnixNano"),
                    "attributes": _js_attrs(s.get("attributes"), f"{path}.attributes"),
                    "events": events,
                    "status": {
                        "code": _enum(status.get("code"), f"{path}.status.code", STATUS_CODES),
                        "message": _str(status.get("message"), f"{path}.status.message", 1024),
                    },
                }
                out.add(item, path, f"{rpath}.resource")
    return out


def logs_from_json(body: bytes, max_items: int | None = None) -> Plain:
    doc = _load_json(body)
    out = Plain(max_items=max_items, kind="log record")
    for i, rl in enumerate(_list(doc.get("resourceLogs"), "resourceLogs")):
        rpath = f"resourceLogs[{i}]"
        rl = _obj(rl, rpath, required=True)
        resource = _js_resource(rl, rpath)
        for j, sl in enumerate(_list(rl.get("scopeLogs"), f"{rpath}.scopeLogs")):
            spath = f"{rpath}.scopeLogs[{j}]"
            sl = _obj(sl, spath, required=True)
            scope = _js_scope(sl, "scope", spath)
            for k, r in enumerate(_list(sl.get("logRecords"), f"{spath}.logRecords")):
                path = f"{spath}.logRecords[{k}]"
                r = _obj(r, path, required=True)
                observed = _ns(r.get("observedTimeUnixNano"), f"{path}.observedTimeUnixNano")
                item = {
                    "resource": resource,
                    "scope": scope,
                    "time_ns": _ns(r.get("timeUnixNano"), f"{path}.timeUnixNano") or observed,
                    "trace_id": _hex_id(r.get("traceId"), 16, f"{path}.traceId"),
                    "span_id": _hex_id(r.get("spanId"), 8, f"{path}.spanId"),
                    "event_name": _str(r.get("eventName"), f"{path}.eventName", 256),
                    "body": _js_value(r.get("body"), f"{path}.body"),
                    "attributes": _js_attrs(r.get("attributes"), f"{path}.attributes"),
                }
                out.add(item, path, f"{rpath}.resource")
    return out


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
        """Raises :class:`BodyError` (a 400 naming the field) when any part of the request is invalid."""
        from agentwatch.capture import otlp as mapping

        proto = is_protobuf(content_type)
        if not proto and not body.strip():  # zero bytes are a valid, empty protobuf export request
            raise BodyError("body", "is empty")
        n = self.max_items
        if signal == "traces":
            plain = traces_from_protobuf(body, n) if proto else traces_from_json(body, n)
        else:
            plain = logs_from_protobuf(body, n) if proto else logs_from_json(body, n)
        try:
            bodies = (
                mapping.map_spans(plain.items, self.redaction)
                if signal == "traces"
                else mapping.map_logs(plain.items, self.redaction)
            )
        except mapping.ItemError as exc:
            raise BodyError(plain.where(exc.index, exc.field), exc.rule) from None
        out = Decoded()
        for index, item in bodies:
            try:
                out.events.append(normalize(item, type_validator=self.type_validator, source_format="otlp"))
            except EventError as exc:
                out.rejected.append(Rejection(index, exc.field, exc.rule))
        return out
