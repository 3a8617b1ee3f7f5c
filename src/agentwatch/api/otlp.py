"""OTLP/HTTP ingest: ``POST /v1/traces`` and ``POST /v1/logs`` (protobuf or JSON, optionally gzip).

An application instrumented with OpenTelemetry GenAI conventions points its OTLP exporter
here (``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:7777``) and its LLM calls and tool
executions arrive as ``ai.*`` / ``agent.*`` events. The answer is the OTLP export response in
the request's encoding, with ``partialSuccess`` counting what was rejected.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.responses import Response

from agentwatch.api.bodies import read_events_body
from agentwatch.api.errors import InvalidRequest, TooLarge
from agentwatch.api.ingest import submit_decoded
from agentwatch.api.security import require
from agentwatch.events.codecs import Decoded
from agentwatch.events.codecs.framing import BodyError
from agentwatch.events.codecs.otlp import OtlpCodec, is_protobuf

router = APIRouter(tags=["otlp"])


def _codec(aw: Any) -> OtlpCodec:
    codec: OtlpCodec = aw.codecs["otlp"]
    codec.redaction = aw.settings.capture.redaction
    return codec


async def _decode(aw: Any, body: bytes, content_type: str, signal: str) -> Decoded:
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct and not is_protobuf(ct) and ct != "application/json":
        raise InvalidRequest("header content-type: must be application/x-protobuf or application/json", status=415)
    try:
        return await aw.pipeline.work.run(_codec(aw).decode_signal, body, content_type, signal)
    except BodyError as exc:
        if exc.status == 413:
            raise TooLarge(str(exc)) from None
        raise InvalidRequest(str(exc)) from None


def _answer(content_type: str, signal: str, outcome: dict[str, Any]) -> Response:
    rejected = int(outcome["rejected"])
    message = "; ".join(f"{e['field']}: {e['reason']}" for e in outcome["errors"][:5])
    if is_protobuf(content_type):
        msg = ExportTraceServiceResponse() if signal == "traces" else ExportLogsServiceResponse()
        if rejected:
            if signal == "traces":
                msg.partial_success.rejected_spans = rejected
            else:
                msg.partial_success.rejected_log_records = rejected
            msg.partial_success.error_message = message
        return Response(msg.SerializeToString(), 200, media_type="application/x-protobuf")
    doc: dict[str, Any] = {}
    if rejected:
        key = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
        doc["partialSuccess"] = {key: str(rejected), "errorMessage": message}
    return Response(orjson.dumps(doc), 200, media_type="application/json")


async def _ingest(request: Request, signal: str) -> Response:
    aw = request.app.state.aw
    body = await read_events_body(request, aw.settings.ingest.max_body_bytes)
    content_type = request.headers.get("content-type", "")
    decoded = await _decode(aw, body, content_type, signal)
    outcome = await submit_decoded(request, decoded, "otlp")
    return _answer(content_type, signal, outcome)


@router.post("/v1/traces", dependencies=[require("events:write", open_on_loopback=True)], response_model=None)
async def traces(request: Request) -> Response:
    """OTLP trace export: GenAI spans become ai.request/ai.response/agent.tool_call/agent.tool_result."""
    return await _ingest(request, "traces")


@router.post("/v1/logs", dependencies=[require("events:write", open_on_loopback=True)], response_model=None)
async def logs(request: Request) -> Response:
    """OTLP log export: GenAI event records (gen_ai.*.message, gen_ai.choice) grouped per span."""
    return await _ingest(request, "logs")
