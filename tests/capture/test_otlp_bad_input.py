"""OTLP ingest refuses malformed exports with a 400 naming the field, never a 500, and loses nothing valid.

The cases come from fuzzing ``POST /v1/traces`` and ``POST /v1/logs``: wrong JSON types for the
structural fields, attribute values of the wrong shape, timestamps out of range, numbers that
cannot be a pid or a token count, and integers beyond 64 bits (which used to be accepted and then
fail the batch commit shared with other clients' events).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.capture.conftest import wait_events

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_700_000_000_000_000_000
SPANS = "resourceSpans[0].scopeSpans[0].spans[0]"
RECORDS = "resourceLogs[0].scopeLogs[0].logRecords[0]"
COUNT_RULE = "must be a whole number from 0 to 9007199254740992"
INT64_RULE = "out of the signed 64-bit range"


def kv(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def s(text: str) -> dict[str, Any]:
    return {"stringValue": text}


def span(span_id: str = "eee19b7ec3c1b174", attrs: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """A valid GenAI chat span; ``fields`` override or add span fields."""
    doc = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "chat gpt-4o",
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 500_000_000),
        "attributes": [
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.provider.name", s("openai")),
            kv("gen_ai.request.model", s("gpt-4o")),
            *(attrs or []),
        ],
    }
    doc.update(fields)
    return doc


def tool_span(*attrs: dict[str, Any]) -> dict[str, Any]:
    return span(
        "eee19b7ec3c1b175",
        name="execute_tool get_weather",
        attributes=[kv("gen_ai.operation.name", s("execute_tool")), kv("gen_ai.tool.name", s("get_weather")), *attrs],
    )


def traces(spans: list[dict[str, Any]], resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource or [kv("service.name", s("agent"))]},
                "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "spans": spans}],
            }
        ]
    }


def record(**fields: Any) -> dict[str, Any]:
    doc = {
        "timeUnixNano": str(T0),
        "traceId": TRACE,
        "spanId": "eee19b7ec3c1b174",
        "eventName": "gen_ai.user.message",
        "attributes": [kv("gen_ai.system", s("openai"))],
        "body": {"kvlistValue": {"values": [kv("content", s("hi"))]}},
    }
    doc.update(fields)
    return doc


def logs(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {"resource": {"attributes": []}, "scopeLogs": [{"scope": {"name": "s"}, "logRecords": records}]}
        ]
    }


def assert_refused(r: httpx.Response, field: str, rule: str | None = None) -> None:
    """A 400 in the error envelope whose message names ``field`` (and the rule, when given)."""
    assert r.status_code == 400, (r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"].startswith(f"{field}: "), error["message"]
    if rule is not None:
        assert error["message"] == f"{field}: {rule}"


# -- wrong JSON types in the structure ------------------------------------------------------------------
TRACE_TYPE_CASES = [
    ({"resourceSpans": True}, "resourceSpans", "must be a list"),
    ({"resourceSpans": [5]}, "resourceSpans[0]", "must be an object"),
    ({"resourceSpans": [{"resource": True}]}, "resourceSpans[0].resource", "must be an object"),
    (
        {"resourceSpans": [{"resource": {"attributes": {"service.name": "x"}}}]},
        "resourceSpans[0].resource.attributes",
        "must be a list",
    ),
    ({"resourceSpans": [{"scopeSpans": 7}]}, "resourceSpans[0].scopeSpans", "must be a list"),
    ({"resourceSpans": [{"scopeSpans": ["x"]}]}, "resourceSpans[0].scopeSpans[0]", "must be an object"),
    ({"resourceSpans": [{"scopeSpans": [{"scope": 1}]}]}, "resourceSpans[0].scopeSpans[0].scope", "must be an object"),
    (
        {"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]},
        "resourceSpans[0].scopeSpans[0].spans",
        "must be a list",
    ),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [True]}]}]}, SPANS, "must be an object"),
    (traces([span(events=True)]), f"{SPANS}.events", "must be a list"),
    (traces([span(events=[3])]), f"{SPANS}.events[0]", "must be an object"),
    (traces([span(events=[{"name": "e", "attributes": 1}])]), f"{SPANS}.events[0].attributes", "must be a list"),
    (traces([span(attributes=True)]), f"{SPANS}.attributes", "must be a list"),
    (traces([span(attributes=[5])]), f"{SPANS}.attributes[0]", "must be an object (an OTLP KeyValue)"),
    (traces([span(attributes=[{"key": 5, "value": s("x")}])]), f"{SPANS}.attributes[0].key", "must be a string"),
    (traces([span(name=["x"])]), f"{SPANS}.name", "must be a string"),
    (traces([span(status=True)]), f"{SPANS}.status", "must be an object"),
    (traces([span(traceId=12)]), f"{SPANS}.traceId", "must be 32 hex digits (or 16 bytes in base64)"),
    (traces([span(kind={"k": 1})]), f"{SPANS}.kind", "must be an integer or an enum name"),
    # attribute values of the wrong shape
    (
        traces([span(attrs=[kv("x", {"arrayValue": 5})])]),
        f"{SPANS}.attributes[x].value.arrayValue",
        "must be an object",
    ),
    (
        traces([span(attrs=[kv("x", {"arrayValue": {"values": 5}})])]),
        f"{SPANS}.attributes[x].value.arrayValue.values",
        None,
    ),
    (
        traces([span(attrs=[kv("x", {"kvlistValue": True})])]),
        f"{SPANS}.attributes[x].value.kvlistValue",
        "must be an object",
    ),
    (
        traces([span(attrs=[kv("x", {"kvlistValue": {"values": [1]}})])]),
        f"{SPANS}.attributes[x].value.kvlistValue.values[0]",
        "must be an object (an OTLP KeyValue)",
    ),
    (traces([span(attrs=[kv("x", 5)])]), f"{SPANS}.attributes[x].value", "must be an object (an OTLP AnyValue)"),
    (
        traces([span(attrs=[kv("x", {"stringValue": 5})])]),
        f"{SPANS}.attributes[x].value.stringValue",
        "must be a string",
    ),
    (traces([span(attrs=[kv("x", {"boolValue": "yes"})])]), f"{SPANS}.attributes[x].value.boolValue", None),
    (traces([span(attrs=[kv("x", {"intValue": "12abc"})])]), f"{SPANS}.attributes[x].value.intValue", None),
    (
        traces([span(attrs=[kv("x", {"doubleValue": "fast"})])]),
        f"{SPANS}.attributes[x].value.doubleValue",
        "must be a number",
    ),
    (
        traces([span()], resource=[kv("deep", {"arrayValue": {"values": [5]}})]),
        "resourceSpans[0].resource.attributes[deep].value.arrayValue.values[0]",
        "must be an object (an OTLP AnyValue)",
    ),
]


@pytest.mark.parametrize(("doc", "field", "rule"), TRACE_TYPE_CASES)
def test_trace_wrong_types_are_400_naming_the_field(open_server, doc, field, rule):
    with open_server.client() as c:
        assert_refused(c.post("/v1/traces", json=doc), field, rule)


LOG_TYPE_CASES = [
    ({"resourceLogs": True}, "resourceLogs", "must be a list"),
    ({"resourceLogs": [{"resource": 3}]}, "resourceLogs[0].resource", "must be an object"),
    ({"resourceLogs": [{"scopeLogs": True}]}, "resourceLogs[0].scopeLogs", "must be a list"),
    (
        {"resourceLogs": [{"scopeLogs": [{"logRecords": "x"}]}]},
        "resourceLogs[0].scopeLogs[0].logRecords",
        "must be a list",
    ),
    ({"resourceLogs": [{"scopeLogs": [{"logRecords": [1]}]}]}, RECORDS, "must be an object"),
    (logs([record(body=5)]), f"{RECORDS}.body", "must be an object (an OTLP AnyValue)"),
    (logs([record(body={"kvlistValue": True})]), f"{RECORDS}.body.kvlistValue", "must be an object"),
    (logs([record(body={"arrayValue": 5})]), f"{RECORDS}.body.arrayValue", "must be an object"),
    (logs([record(attributes=True)]), f"{RECORDS}.attributes", "must be a list"),
    (logs([record(eventName=5)]), f"{RECORDS}.eventName", "must be a string"),
]


@pytest.mark.parametrize(("doc", "field", "rule"), LOG_TYPE_CASES)
def test_log_wrong_types_are_400_naming_the_field(open_server, doc, field, rule):
    with open_server.client() as c:
        assert_refused(c.post("/v1/logs", json=doc), field, rule)


# -- timestamps -----------------------------------------------------------------------------------------
NS_RULE = "must be an integer (nanoseconds since the Unix epoch)"
TIME_CASES = [
    (traces([span(startTimeUnixNano="-1180591620717411303424")]), f"{SPANS}.startTimeUnixNano", "out of range"),
    (traces([span(startTimeUnixNano=1e308)]), f"{SPANS}.startTimeUnixNano", "out of range"),
    (traces([span(startTimeUnixNano=-1)]), f"{SPANS}.startTimeUnixNano", "out of range"),
    (traces([span(endTimeUnixNano=str(2**64))]), f"{SPANS}.endTimeUnixNano", "out of range"),
    (traces([span(endTimeUnixNano="9" * 400)]), f"{SPANS}.endTimeUnixNano", "out of range"),
    (traces([span(startTimeUnixNano="soon")]), f"{SPANS}.startTimeUnixNano", NS_RULE),
    (traces([span(startTimeUnixNano=True)]), f"{SPANS}.startTimeUnixNano", NS_RULE),
    (traces([span(startTimeUnixNano=1.5)]), f"{SPANS}.startTimeUnixNano", NS_RULE),
    (traces([span(events=[{"name": "gen_ai.choice", "timeUnixNano": "-5"}])]), f"{SPANS}.events[0].timeUnixNano", None),
]


@pytest.mark.parametrize(("doc", "field", "rule"), TIME_CASES)
def test_span_timestamps_out_of_range_are_400(open_server, doc, field, rule):
    with open_server.client() as c:
        assert_refused(c.post("/v1/traces", json=doc), field, rule)


def test_log_timestamps_out_of_range_are_400(open_server):
    with open_server.client() as c:
        r = c.post("/v1/logs", json=logs([record(timeUnixNano="-1180591620717411303424")]))
        assert_refused(r, f"{RECORDS}.timeUnixNano", "out of range")
        r = c.post("/v1/logs", json=logs([record(timeUnixNano=None, observedTimeUnixNano=1e308)]))
        assert_refused(r, f"{RECORDS}.observedTimeUnixNano", "out of range")


# -- numbers: pid and token counts, integers beyond 64 bits ----------------------------------------------
BIG = str(2**64)
TOKENS = f"{SPANS}.attributes[gen_ai.usage.input_tokens]"
NUMBER_CASES = [
    # a non-finite double where an integer is expected
    (
        traces([span()], [kv("process.pid", {"doubleValue": "Infinity"})]),
        "resourceSpans[0].resource.attributes[process.pid]",
        COUNT_RULE,
    ),
    (traces([span(attrs=[kv("gen_ai.usage.input_tokens", {"doubleValue": "Infinity"})])]), TOKENS, COUNT_RULE),
    (traces([span(attrs=[kv("gen_ai.usage.input_tokens", {"doubleValue": "NaN"})])]), TOKENS, COUNT_RULE),
    (traces([span(attrs=[kv("gen_ai.usage.input_tokens", {"doubleValue": 1e300})])]), TOKENS, COUNT_RULE),
    (
        traces([span(attrs=[kv("gen_ai.usage.output_tokens", {"intValue": "-3"})])]),
        f"{SPANS}.attributes[gen_ai.usage.output_tokens]",
        COUNT_RULE,
    ),
    (traces([span(attrs=[kv("gen_ai.usage.input_tokens", s("9" * 30))])]), TOKENS, COUNT_RULE),
    # integers beyond 64 bits: refused where they are read, whatever attribute they are in
    (
        traces([span()], [kv("process.pid", {"intValue": BIG})]),
        "resourceSpans[0].resource.attributes[process.pid].value.intValue",
        INT64_RULE,
    ),
    (
        traces([span(attrs=[kv("gen_ai.usage.input_tokens", {"intValue": BIG})])]),
        f"{TOKENS}.value.intValue",
        INT64_RULE,
    ),
    (
        traces([span(attrs=[kv("gen_ai.usage.input_tokens", {"intValue": 2**64})])]),
        f"{TOKENS}.value.intValue",
        INT64_RULE,
    ),
    (
        traces([span(attrs=[kv("x.count", {"intValue": str(-(2**63) - 1)})])]),
        f"{SPANS}.attributes[x.count].value.intValue",
        INT64_RULE,
    ),
    (
        traces(
            [tool_span(kv("gen_ai.tool.call.arguments", {"kvlistValue": {"values": [kv("n", {"intValue": BIG})]}}))]
        ),
        "resourceSpans[0].scopeSpans[0].spans[0].attributes[gen_ai.tool.call.arguments].value.kvlistValue.values[n].value.intValue",
        INT64_RULE,
    ),
    (
        traces([tool_span(kv("gen_ai.tool.call.result", {"arrayValue": {"values": [{"intValue": BIG}]}}))]),
        f"{SPANS}.attributes[gen_ai.tool.call.result].value.arrayValue.values[0].intValue",
        INT64_RULE,
    ),
    # tool arguments given as JSON text too deeply nested to store
    (
        traces([tool_span(kv("gen_ai.tool.call.arguments", s('{"a":' * 300 + "1" + "}" * 300)))]),
        f"{SPANS}.attributes[gen_ai.tool.call.arguments]",
        None,
    ),
]


@pytest.mark.parametrize(("doc", "field", "rule"), NUMBER_CASES)
def test_bad_numbers_are_400_naming_the_field(open_server, doc, field, rule):
    with open_server.client() as c:
        assert_refused(c.post("/v1/traces", json=doc), field, rule)


def test_bad_numbers_in_logs_are_400(open_server):
    with open_server.client() as c:
        bad = record(
            attributes=[
                kv("gen_ai.system", s("openai")),
                kv("gen_ai.usage.output_tokens", {"doubleValue": "-Infinity"}),
            ]
        )
        r = c.post("/v1/logs", json=logs([record(spanId="eee19b7ec3c1b170"), bad]))
        assert_refused(
            r, "resourceLogs[0].scopeLogs[0].logRecords[1].attributes[gen_ai.usage.output_tokens]", COUNT_RULE
        )
        big = record(body={"kvlistValue": {"values": [kv("content", {"intValue": BIG})]}})
        assert_refused(
            c.post("/v1/logs", json=logs([big])),
            f"{RECORDS}.body.kvlistValue.values[content].value.intValue",
            INT64_RULE,
        )


def _pb_traces(resource: list[KeyValue], attrs: list[KeyValue]) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(resource)
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id = bytes.fromhex(TRACE), bytes.fromhex("eee19b7ec3c1b174")
    sp.start_time_unix_nano, sp.end_time_unix_nano = T0, T0 + 1
    sp.attributes.append(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o")))
    sp.attributes.extend(attrs)
    return req.SerializeToString()


def test_protobuf_gets_the_same_guards(open_server):
    pb = {"Content-Type": "application/x-protobuf"}
    inf = AnyValue(double_value=float("inf"))
    with open_server.client() as c:
        r = c.post("/v1/traces", content=_pb_traces([KeyValue(key="process.pid", value=inf)], []), headers=pb)
        assert_refused(r, "resourceSpans[0].resource.attributes[process.pid]", COUNT_RULE)
        r = c.post(
            "/v1/traces", content=_pb_traces([], [KeyValue(key="gen_ai.usage.input_tokens", value=inf)]), headers=pb
        )
        assert_refused(r, TOKENS, COUNT_RULE)
        huge = AnyValue(int_value=2**63 - 1)  # a valid int64, but no token count
        r = c.post(
            "/v1/traces", content=_pb_traces([], [KeyValue(key="gen_ai.usage.output_tokens", value=huge)]), headers=pb
        )
        assert_refused(r, f"{SPANS}.attributes[gen_ai.usage.output_tokens]", COUNT_RULE)
        deep = AnyValue(int_value=1)
        for _ in range(20):
            outer = AnyValue()
            outer.kvlist_value.values.append(KeyValue(key="k", value=deep))
            deep = outer
        r = c.post("/v1/traces", content=_pb_traces([], [KeyValue(key="deep", value=deep)]), headers=pb)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{SPANS}.attributes[deep].value.kvlistValue.values[k].value")
        assert message.endswith(": nested deeper than 16 levels")
        lr = ExportLogsServiceRequest()
        rec = lr.resource_logs.add().scope_logs.add().log_records.add()
        rec.time_unix_nano = T0
        rec.attributes.append(KeyValue(key="event.name", value=AnyValue(string_value="gen_ai.user.message")))
        rec.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(double_value=float("nan"))))
        r = c.post("/v1/logs", content=lr.SerializeToString(), headers=pb)
        assert_refused(r, f"{RECORDS}.attributes[gen_ai.usage.input_tokens]", COUNT_RULE)


# -- what is valid is kept ----------------------------------------------------------------------------
def test_odd_but_valid_content_is_stored_not_a_500(server):
    """Shapes inside JSON-text attributes are read defensively; in-range big numbers are kept."""
    weird = [
        kv("gen_ai.input.messages", s('[{"role": "user", "parts": 5, "content": "hello"}]')),
        kv("gen_ai.output.messages", s('[{"role": "assistant", "parts": true}]')),
        kv("gen_ai.tool.definitions", s('[{"function": 3, "name": "f", "type": {"deep": [1]}}]')),
        kv("gen_ai.usage.input_tokens", s("²")),  # not a number: ignored, as any other non-numeric text
        kv("gen_ai.usage.output_tokens", {"doubleValue": 12.0}),
    ]
    resource = [kv("service.name", s("agent")), kv("service.big", {"intValue": str(2**63 - 1)})]
    with server.client() as c:
        r = c.post("/v1/traces", json=traces([span(attrs=weird)], resource))
        assert r.status_code == 200 and r.json() == {}, r.text
        req = wait_events(c, "ai.request", 1)[0]
        assert req["data"]["messages"][0]["content"] == "hello"
        assert req["attrs"]["service.big"] == 2**63 - 1
        resp = wait_events(c, "ai.response", 1)[0]
        assert resp["data"]["usage"] == {**resp["data"]["usage"], "completion_tokens": 12}
        # a 2**64 inside tool arguments sent as JSON text is a JSON number: read as a double, stored
        args = kv("gen_ai.tool.call.arguments", s('{"n": 18446744073709551616}'))
        assert c.post("/v1/traces", json=traces([tool_span(args)])).status_code == 200
        call = wait_events(c, "agent.tool_call", 1)[0]
        assert call["data"]["arguments"] == {"n": 2.0**64}


def test_valid_exports_next_to_bad_ones_are_all_stored(server):
    """A bad export is refused whole (nothing of it stored); valid ones sent with it or right after are kept."""
    bad_docs = [
        traces([span("aaaaaaaaaaaaaa01")], [kv("process.pid", {"intValue": BIG})]),
        traces([span("aaaaaaaaaaaaaa02", [kv("gen_ai.usage.input_tokens", {"intValue": BIG})])]),
        traces([span("aaaaaaaaaaaaaa03", startTimeUnixNano="-1180591620717411303424")]),
        {"resourceSpans": [{"resource": True}]},
    ]
    with server.client() as c:
        # a valid span together with a bad one in the same export: the export is refused as a whole
        mixed = traces([span("bbbbbbbbbbbbbb00"), span("bbbbbbbbbbbbbb01", startTimeUnixNano=1e308)])
        assert_refused(c.post("/v1/traces", json=mixed), "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano")
        # right after a bad one, the valid one is stored
        assert_refused(
            c.post("/v1/traces", json=bad_docs[0]), "resourceSpans[0].resource.attributes[process.pid].value.intValue"
        )
        assert c.post("/v1/traces", json=traces([span("bbbbbbbbbbbbbb00")])).status_code == 200
        assert len(wait_events(c, "ai.request", 1)) == 1

    # many clients at once, bad and valid exports interleaved: every valid one is stored
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with server.client() as c:
            for k in range(3):
                good = c.post("/v1/traces", json=traces([span(f"c{n:07x}{k:08x}")]))
                bad = c.post("/v1/traces", json=bad_docs[(n + k) % len(bad_docs)])
                with lock:
                    statuses.extend([good.status_code, -bad.status_code])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(statuses)) == [-400, 200]
    with server.client() as c:
        requests = wait_events(c, "ai.request", 1 + 18)
        assert len(requests) == 19
        assert len(wait_events(c, "ai.response", 19)) == 19
        assert c.get("/api/events").json()["total"] == 38
        ids = {e["trace_context"]["span_id"] for e in requests}
        assert {f"c{n:07x}{k:08x}" for n in range(6) for k in range(3)} <= ids
