"""OTLP/JSON exports (GenAI spans in both attribute generations, and log records) with parts
replaced, removed or added (``tests.support.mutations``), posted to a real server on both
stores: each is answered 200 or a 4xx naming what is wrong, never a 5xx, and a 200 still
leaves the server answering. Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.capture.test_otlp import (
    CURRENT_SPAN,
    LEGACY_SPAN,
    NOT_GENAI,
    TOOL_SPAN_DOC,
    USER_MESSAGE_RECORD,
    jattr,
    json_export,
)
from tests.support.mutations import encode, mutated
from tests.support.server import RunningServer

LOGS = {
    "resourceLogs": [
        {
            "resource": {"attributes": [jattr("host.name", "box1")]},
            "scopeLogs": [
                {
                    "scope": {"name": "s"},
                    "logRecords": [USER_MESSAGE_RECORD],
                }
            ],
        }
    ]
}
TRACES = [json_export([CURRENT_SPAN, TOOL_SPAN_DOC]), json_export([LEGACY_SPAN, NOT_GENAI])]
# The resource's host name and the span's model name end up in indexed columns
SPAN_HOT = [
    ("resourceSpans", 0, "resource", "attributes", 1, "value", "stringValue"),
    ("resourceSpans", 0, "scopeSpans", 0, "spans", 0, "attributes", 2, "value", "stringValue"),
    ("resourceSpans", 0, "scopeSpans", 0, "spans", 0, "traceId"),
]
LOG_HOT = [("resourceLogs", 0, "resource", "attributes", 0, "value", "stringValue")]


def _post(srv: RunningServer, path: str, doc: dict[str, Any]) -> None:
    with srv.client() as c:
        r = c.post(path, content=encode(doc), headers={"content-type": "application/json"})
        assert r.status_code in (200, 400, 413), r.text
        if r.status_code != 200:
            assert r.json()["error"]["message"], r.text
        assert c.get("/api/health").status_code == 200


@given(doc=mutated(TRACES, SPAN_HOT, frozenset()))
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_span_exports_are_taken_or_refused_never_a_server_error(
    open_server: RunningServer, doc: dict[str, Any]
) -> None:
    _post(open_server, "/v1/traces", doc)


@given(doc=mutated([LOGS], LOG_HOT, frozenset()))
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_log_exports_are_taken_or_refused_never_a_server_error(
    open_server: RunningServer, doc: dict[str, Any]
) -> None:
    _post(open_server, "/v1/logs", doc)
