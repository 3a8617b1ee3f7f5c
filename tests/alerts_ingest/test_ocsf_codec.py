"""The OCSF codec: each class it knows mapped to its OISP event type and payload, unknown
classes kept as ``ocsf.event``, and malformed events refused one by one with the OCSF field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agentwatch.events import entities
from agentwatch.events.codecs.ocsf import OcsfCodec
from agentwatch.extensions import load_registry

T = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


@pytest.fixture(scope="module")
def codec() -> OcsfCodec:
    registry = load_registry(external=False)
    return OcsfCodec(type_validator=registry.event_types.get, max_event_bytes=4096, clock=lambda: 1_800_000_000.0)


def one(codec: OcsfCodec, doc: dict[str, Any]) -> Any:
    out = codec.decode(orjson.dumps(doc))
    assert out.rejected == [], out.rejected
    (event,) = out.events
    return event


def kinds(event: Any) -> set[tuple[str, str]]:
    return {(e["type"], e["value"]) for e in entities.derive(event)}


def test_process_launch_is_a_process_exec_with_host_user_and_process(codec: OcsfCodec) -> None:
    doc = {
        "class_uid": 1007,
        "activity_id": 1,
        "time": T,
        "severity_id": 4,
        "metadata": {"uid": "evt-1", "product": {"name": "edr"}},
        "device": {"hostname": "web-1"},
        "actor": {"user": {"name": "alice"}},
        "process": {"pid": 99, "name": "sh", "file": {"path": "/bin/sh"}, "parent_process": {"pid": 1}},
    }
    event = one(codec, doc)
    assert (event.event_type, event.event_id, event.source_format) == ("process.exec", "evt-1", "ocsf")
    assert event.body["ts"] == "2023-11-14T22:13:20.123000Z"
    assert event.data == {"exe": "/bin/sh"}
    assert event.body["process"] == {"name": "sh", "exe": "/bin/sh", "pid": 99, "ppid": 1}
    assert event.severity == 7  # OCSF High
    assert event.body["source"]["collector"] == "ocsf:edr"
    assert event.body["ext"]["ocsf"] == doc  # the original is kept whole
    assert kinds(event) == {("host", "web-1"), ("user", "alice"), ("process", "/bin/sh")}


def test_file_activities_map_to_their_oisp_types(codec: OcsfCodec) -> None:
    base = {"class_uid": 1001, "time": T, "file": {"path": "/etc/passwd"}}
    assert one(codec, {**base, "activity_id": 2}).event_type == "file.read"
    deleted = one(codec, {**base, "activity_id": 4})
    assert (deleted.event_type, deleted.data) == ("file.delete", {"path": "/etc/passwd"})
    renamed = one(codec, {**base, "activity_id": 5, "file_result": {"path": "/tmp/p"}})
    assert renamed.data == {"old_path": "/etc/passwd", "new_path": "/tmp/p"}
    # a rename without its new name has no OISP form: the class's generic type keeps it
    assert one(codec, {**base, "activity_id": 5}).event_type == "ocsf.file_system_activity"
    assert ("file", "/etc/passwd") in kinds(deleted)


def test_network_http_and_dns_name_their_addresses(codec: OcsfCodec) -> None:
    net = one(
        codec,
        {
            "class_uid": 4001,
            "activity_id": 1,
            "time": T,
            "dst_endpoint": {"ip": "::ffff:10.1.2.3", "port": 445},
            "connection_info": {"protocol_name": "TCP"},
        },
    )
    assert net.event_type == "network.connect"
    assert net.data == {"dest": {"ip": "::ffff:10.1.2.3", "port": 445}, "protocol": "tcp", "success": True}
    assert ("ip", "10.1.2.3") in kinds(net)  # one spelling of the address
    http = one(
        codec,
        {
            "class_uid": 4002,
            "activity_id": 1,
            "time": T,
            "http_request": {"http_method": "POST", "url": {"hostname": "Evil.Example", "path": "/up"}},
            "http_response": {"code": 200},
        },
    )
    assert http.event_type == "network.flow"
    assert http.data["http"] == {"method": "POST", "path": "/up", "host": "Evil.Example", "status_code": 200}
    assert ("domain", "evil.example") in kinds(http)
    dns = one(codec, {"class_uid": 4003, "time": T, "query": {"hostname": "c2.example", "type": "txt"}, "rcode_id": 3})
    assert dns.event_type == "network.dns"
    assert dns.data == {"query_name": "c2.example", "query_type": "TXT", "response_code": "NXDOMAIN"}
    assert ("domain", "c2.example") in kinds(dns)


def test_classes_without_an_oisp_form_keep_a_generic_type(codec: OcsfCodec) -> None:
    api = one(codec, {"class_uid": 6003, "activity_id": 2, "time": T, "api": {"operation": "GetObject"}})
    assert (api.event_type, api.data["operation"], api.data["class_name"]) == (
        "ocsf.api_activity",
        "GetObject",
        "api_activity",
    )
    finding = one(codec, {"class_uid": 2004, "time": T, "finding_info": {"title": "Lateral movement", "uid": "f1"}})
    assert (finding.event_type, finding.data["title"]) == ("ocsf.detection_finding", "Lateral movement")
    assert one(codec, {"class_uid": 6009, "time": T}).event_type == "ocsf.ai_agent_activity"
    unknown = one(codec, {"class_uid": 5019, "activity_id": 3, "time": T, "x": [1]})
    assert (unknown.event_type, unknown.data) == ("ocsf.event", {"class_uid": 5019, "activity_id": 3})
    assert unknown.body["ext"]["ocsf"]["x"] == [1]


@pytest.mark.parametrize(
    ("doc", "field", "rule"),
    [
        ({"time": T}, "class_uid", "is required"),
        ({"class_uid": 1007}, "time", "is required"),
        ({"class_uid": "1007", "time": T}, "class_uid", "must be an integer"),
        ({"class_uid": 1007, "time": "2024-01-01T00:00:00Z"}, "time", "must be an integer"),
        ({"class_uid": 1007, "time": True}, "time", "must be an integer"),
        ({"class_uid": 1007, "time": T, "severity_id": 7}, "severity_id", "must be one of"),
        ({"class_uid": 1007, "time": T, "device": "web-1"}, "device", "must be an object"),
        (
            {"class_uid": 4001, "time": T, "dst_endpoint": {"ip": "1.2.3.4", "port": 70000}},
            "dst_endpoint.port",
            "between",
        ),  # noqa: E501
        ({"class_uid": 1007, "time": T, "actor": {"user": {"name": 7}}}, "actor.user.name", "must be a string"),
        ({"class_uid": 1007, "time": T, "metadata": {"uid": "a\nb"}}, "metadata.uid", "control characters"),
    ],
)
def test_malformed_events_name_the_ocsf_field(codec: OcsfCodec, doc: dict[str, Any], field: str, rule: str) -> None:
    out = codec.decode(orjson.dumps(doc))
    assert out.events == []
    (rejection,) = out.rejected
    assert rejection.field == field
    assert rule in rejection.reason


def test_ndjson_lines_are_judged_one_by_one(codec: OcsfCodec) -> None:
    good = orjson.dumps({"class_uid": 4003, "time": T, "query": {"hostname": "a.example"}})
    body = b"\n".join([good, b"{not json", orjson.dumps({"class_uid": 1}), good, orjson.dumps([1])])
    out = codec.decode(body)
    assert len(out.events) == 2
    assert [(r.index, r.field) for r in out.rejected] == [(1, "body"), (2, "time"), (4, "event")]


def test_an_event_over_the_size_limit_is_refused(codec: OcsfCodec) -> None:
    out = codec.decode(orjson.dumps({"class_uid": 0, "time": T, "message": "x" * 5000}))
    assert [(r.field, r.reason) for r in out.rejected] == [("event", "larger than 4096 bytes")]
