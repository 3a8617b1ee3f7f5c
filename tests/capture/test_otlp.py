"""OTLP ingest: GenAI spans and log records, JSON and protobuf, both attribute generations."""

from __future__ import annotations

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.capture.conftest import wait_events

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
TOOL_SPAN = "eee19b7ec3c1b175"
T0 = 1_700_000_000_000_000_000


def jattr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def json_export(spans: list[dict]) -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        jattr("service.name", "billing-agent"),
                        jattr("host.name", "box1"),
                        jattr("process.pid", 4242),
                    ]
                },
                "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "spans": spans}],
            }
        ]
    }


CURRENT_SPAN = {
    "traceId": TRACE,
    "spanId": SPAN,
    "name": "chat gpt-4o",
    "kind": 3,
    "startTimeUnixNano": str(T0),
    "endTimeUnixNano": str(T0 + 850_000_000),
    "attributes": [
        jattr("gen_ai.operation.name", "chat"),
        jattr("gen_ai.provider.name", "openai"),
        jattr("gen_ai.request.model", "gpt-4o"),
        jattr("gen_ai.response.model", "gpt-4o-2024-08-06"),
        jattr("gen_ai.response.id", "chatcmpl-xyz"),
        jattr("gen_ai.request.temperature", 0.2),
        jattr("gen_ai.usage.input_tokens", 1000),
        jattr("gen_ai.usage.output_tokens", 100),
        jattr("gen_ai.response.finish_reasons", ["tool_calls"]),
        jattr("gen_ai.conversation.id", "conv-7"),
        jattr("gen_ai.agent.name", "billing"),
        jattr(
            "gen_ai.input.messages",
            orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "weather in Paris? key AKIAIOSFODNN7EXAMPLE"}]}]
            ).decode(),
        ),
        jattr(
            "gen_ai.output.messages",
            orjson.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
                        ],
                        "finish_reason": "tool_call",
                    }
                ]
            ).decode(),
        ),
    ],
    "status": {},
}
TOOL_SPAN_DOC = {
    "traceId": TRACE,
    "spanId": TOOL_SPAN,
    "parentSpanId": SPAN,
    "name": "execute_tool get_weather",
    "startTimeUnixNano": str(T0 + 900_000_000),
    "endTimeUnixNano": str(T0 + 950_000_000),
    "attributes": [
        jattr("gen_ai.operation.name", "execute_tool"),
        jattr("gen_ai.tool.name", "get_weather"),
        jattr("gen_ai.tool.call.id", "call_1"),
        jattr("gen_ai.tool.call.arguments", '{"city": "Paris"}'),
        jattr("gen_ai.tool.call.result", "18C and sunny"),
    ],
}
LEGACY_SPAN = {
    "traceId": "0af7651916cd43dd8448eb211c80319c",
    "spanId": "b7ad6b7169203331",
    "name": "anthropic.chat",
    "startTimeUnixNano": str(T0),
    "endTimeUnixNano": str(T0 + 400_000_000),
    "attributes": [
        jattr("gen_ai.system", "Anthropic"),
        jattr("gen_ai.request.model", "claude-3-5-sonnet-20241022"),
        jattr("gen_ai.usage.prompt_tokens", 500),
        jattr("gen_ai.usage.completion_tokens", 40),
        jattr("gen_ai.prompt.0.role", "system"),
        jattr("gen_ai.prompt.0.content", "be brief"),
        jattr("gen_ai.prompt.1.role", "user"),
        jattr("gen_ai.prompt.1.content", "list files"),
        jattr("gen_ai.completion.0.role", "assistant"),
        jattr("gen_ai.completion.0.content", "Listing."),
        jattr("gen_ai.completion.0.finish_reason", "tool_use"),
        jattr("gen_ai.completion.0.tool_calls.0.id", "toolu_9"),
        jattr("gen_ai.completion.0.tool_calls.0.name", "bash"),
        jattr("gen_ai.completion.0.tool_calls.0.arguments", '{"command": "ls"}'),
        jattr("llm.request.functions.0.name", "bash"),
    ],
}
NOT_GENAI = {
    "traceId": TRACE,
    "spanId": "1111111111111111",
    "name": "GET /health",
    "attributes": [jattr("http.method", "GET")],
}


def test_current_genai_span_json(server):
    with server.client() as c:
        r = c.post("/v1/traces", json=json_export([CURRENT_SPAN, TOOL_SPAN_DOC, NOT_GENAI]))
        assert r.status_code == 200 and r.json() == {}
        req = wait_events(c, "ai.request", 1)[0]
        resp = wait_events(c, "ai.response", 1)[0]
        assert req["trace_context"]["trace_id"] == TRACE and req["trace_context"]["span_id"] == SPAN
        assert req["data"]["provider"]["name"] == "openai" and req["data"]["model"]["id"] == "gpt-4o"
        assert req["data"]["parameters"] == {"temperature": 0.2}
        assert req["data"]["conversation_id"] == "conv-7"
        assert req["process"]["pid"] == 4242 and req["host"]["hostname"] == "box1"
        # content is redacted (safe mode by default) before it is stored
        assert req["data"]["messages"][0]["content"]["$redacted"]["findings"] == [
            {"type": "aws_access_key_id", "count": 1}
        ]
        assert resp["data"]["usage"]["prompt_tokens"] == 1000 and resp["data"]["usage"]["completion_tokens"] == 100
        assert resp["data"]["usage"]["total_cost_usd"] == 0.0035
        assert resp["data"]["latency_ms"] == 850
        assert resp["data"]["finish_reason"] == "tool_calls"
        assert resp["data"]["model"]["id"] == "gpt-4o-2024-08-06"
        assert resp["related_events"] == [{"event_id": req["event_id"], "relationship": "parent"}]
        calls = wait_events(c, "agent.tool_call", 2)
        assert {e["data"]["call_id"] for e in calls} == {"call_1"}
        assert all(e["data"]["arguments"] == {"city": "Paris"} for e in calls)
        result = wait_events(c, "agent.tool_result", 1)[0]
        assert result["data"]["result"] == "18C and sunny" and result["data"]["duration_ms"] == 50
        assert c.get("/api/events").json()["total"] == 5  # the /health span made nothing
        # the same export again changes nothing (event ids derive from span ids)
        c.post("/v1/traces", json=json_export([CURRENT_SPAN]))
        assert c.get("/api/events").json()["total"] == 5


def test_legacy_attributes_protobuf(server):
    req_pb = ExportTraceServiceRequest()
    rs = req_pb.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="legacy")))
    span = rs.scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(LEGACY_SPAN["traceId"])
    span.span_id = bytes.fromhex(LEGACY_SPAN["spanId"])
    span.name = LEGACY_SPAN["name"]
    span.start_time_unix_nano = T0
    span.end_time_unix_nano = T0 + 400_000_000
    for a in LEGACY_SPAN["attributes"]:
        v = a["value"]
        any_value = (
            AnyValue(int_value=int(v["intValue"])) if "intValue" in v else AnyValue(string_value=v["stringValue"])
        )
        span.attributes.append(KeyValue(key=a["key"], value=any_value))
    with server.client() as c:
        r = c.post("/v1/traces", content=req_pb.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
        ExportTraceServiceResponse.FromString(r.content)  # a valid OTLP response
        req = wait_events(c, "ai.request", 1)[0]["data"]
        assert req["provider"]["name"] == "anthropic"
        assert [(m["role"], m["content"]) for m in req["messages"]] == [("system", "be brief"), ("user", "list files")]
        assert req["tools"] == [{"name": "bash", "type": "function"}]
        resp = wait_events(c, "ai.response", 1)[0]["data"]
        assert resp["choices"][0]["message"]["content"] == "Listing."
        assert resp["finish_reason"] == "tool_calls"
        assert resp["usage"]["prompt_tokens"] == 500 and resp["usage"]["completion_tokens"] == 40
        assert resp["tool_calls"][0] == {
            **resp["tool_calls"][0],
            "id": "toolu_9",
            "name": "bash",
            "arguments": {"command": "ls"},
        }
        call = wait_events(c, "agent.tool_call", 1)[0]["data"]
        assert call["tool"] == {"name": "bash", "type": "shell"}


USER_MESSAGE_RECORD = {
    "timeUnixNano": str(T0),
    "traceId": TRACE,
    "spanId": SPAN,
    "eventName": "gen_ai.user.message",
    "attributes": [jattr("gen_ai.system", "openai")],
    "body": {"kvlistValue": {"values": [jattr("content", "hi there")]}},
}


def test_logs_json_grouped_per_span_and_protobuf(server):
    records = [
        USER_MESSAGE_RECORD,
        {
            "timeUnixNano": str(T0 + 300_000_000),
            "traceId": TRACE,
            "spanId": SPAN,
            "attributes": [jattr("event.name", "gen_ai.choice"), jattr("gen_ai.system", "openai")],
            "body": {
                "kvlistValue": {
                    "values": [
                        jattr("finish_reason", "stop"),
                        {"key": "message", "value": {"kvlistValue": {"values": [jattr("content", "hello!")]}}},
                    ]
                }
            },
        },
        {"timeUnixNano": str(T0), "attributes": [jattr("http.route", "/x")], "body": {"stringValue": "unrelated"}},
    ]
    doc = {
        "resourceLogs": [
            {"resource": {"attributes": []}, "scopeLogs": [{"scope": {"name": "s"}, "logRecords": records}]}
        ]
    }
    with server.client() as c:
        assert c.post("/v1/logs", json=doc).status_code == 200
        req = wait_events(c, "ai.request", 1)[0]["data"]
        assert req["messages"] == [{"role": "user", "content": "hi there", "content_length": 8}]
        resp = wait_events(c, "ai.response", 1)[0]["data"]
        assert resp["choices"][0]["message"]["content"] == "hello!" and resp["finish_reason"] == "stop"
        assert resp["latency_ms"] == 300
        pb = ExportLogsServiceRequest()
        rec = pb.resource_logs.add().scope_logs.add().log_records.add()
        rec.time_unix_nano = T0
        rec.attributes.append(KeyValue(key="event.name", value=AnyValue(string_value="gen_ai.user.message")))
        rec.attributes.append(KeyValue(key="gen_ai.system", value=AnyValue(string_value="openai")))
        rec.body.string_value = "from protobuf"
        r = c.post("/v1/logs", content=pb.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200
        reqs = wait_events(c, "ai.request", 2)
        assert any(m["content"] == "from protobuf" for e in reqs for m in e["data"].get("messages", []))


def test_bad_otlp_bodies_get_4xx(server):
    with server.client() as c:
        bad_pb = c.post("/v1/traces", content=b"\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"})
        assert bad_pb.status_code == 400 and "ExportTraceServiceRequest" in bad_pb.json()["error"]["message"]
        bad_json = c.post("/v1/traces", content=b"{nope", headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and bad_json.json()["error"]["message"].startswith("body: malformed JSON")
        wrong_type = c.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
        assert wrong_type.status_code == 415 and "content-type" in wrong_type.json()["error"]["message"]
        not_object = c.post("/v1/logs", json=[1, 2])
        assert not_object.status_code == 400
        empty_json = c.post("/v1/traces", content=b"", headers={"Content-Type": "application/json"})
        assert empty_json.status_code == 400 and empty_json.json()["error"]["message"] == "body: is empty"


def test_an_empty_protobuf_export_is_a_valid_request_with_nothing_in_it(server):
    """Zero bytes are the protobuf encoding of an export request without spans or records."""
    pb = {"Content-Type": "application/x-protobuf"}
    with server.client() as c:
        for signal in ("traces", "logs"):
            r = c.post(f"/v1/{signal}", content=b"", headers=pb)
            assert r.status_code == 200, r.text
        assert c.get("/api/events").json()["total"] == 0


def test_indexed_attribute_keys_take_ascii_digits_only(server):
    """``\\d`` in a str pattern matches any script's digits and ``int`` reads them: a key
    ``gen_ai.prompt.\\u0660.content`` (an Arabic-Indic zero) replaced prompt 0's content."""
    span = {
        **LEGACY_SPAN,
        "spanId": "c7ad6b7169203331",
        "attributes": [
            *LEGACY_SPAN["attributes"],
            jattr("gen_ai.prompt.\u0660.content", "spoofed"),
            jattr("gen_ai.prompt.0.content\n", "spoofed too"),
        ],
    }
    with server.client() as c:
        assert c.post("/v1/traces", json=json_export([span])).status_code == 200
        req = wait_events(c, "ai.request", 1)[0]
        assert [m["content"] for m in req["data"]["messages"]] == ["be brief", "list files"]
