"""Defects found in the OCSF codec: a bad DNS answer named by a field the sender does not
have, and endpoint addresses that are no address taken as domain names."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agentwatch.events import entities
from agentwatch.events.codecs.ocsf import OcsfCodec
from agentwatch.extensions import load_registry

T = 1_700_000_000_123


@pytest.fixture(scope="module")
def codec() -> OcsfCodec:
    registry = load_registry(external=False)
    return OcsfCodec(type_validator=registry.event_types.get, clock=lambda: 1_800_000_000.0)


def refusal(codec: OcsfCodec, doc: dict[str, Any]) -> tuple[str, str]:
    out = codec.decode(orjson.dumps(doc))
    assert out.events == []
    (rejection,) = out.rejected
    return rejection.field, rejection.reason


def test_a_bad_dns_answer_is_named_by_its_index_in_answers(codec: OcsfCodec) -> None:
    dns = {"class_uid": 4003, "activity_id": 1, "time": T, "query": {"hostname": "x.example"}}
    good = {"rdata": "192.0.2.1", "type": "A"}
    assert refusal(codec, {**dns, "answers": [good, {"rdata": 5}]}) == ("answers[1].rdata", "must be a string")
    assert refusal(codec, {**dns, "answers": [{"rdata": "a", "type": ["A"]}]}) == (
        "answers[0].type",
        "must be a string",
    )
    assert refusal(codec, {**dns, "answers": [good, good, {"rdata": "a\x00"}]}) == (
        "answers[2].rdata",
        "must not contain control characters",
    )


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"class_uid": 4001, "activity_id": 1, "dst_endpoint": {"ip": "not-an-ip", "port": 1}}, "dst_endpoint.ip"),
        (
            {"class_uid": 4001, "activity_id": 1, "dst_endpoint": {"ip": "10.0.0.1"}, "src_endpoint": {"ip": "1.2.3"}},
            "src_endpoint.ip",
        ),
        ({"class_uid": 4002, "activity_id": 1, "dst_endpoint": {"ip": "ZZZ::1"}}, "dst_endpoint.ip"),
        (
            {"class_uid": 4003, "activity_id": 1, "query": {"hostname": "a.example"}, "dst_endpoint": {"ip": "dns"}},
            "dst_endpoint.ip",
        ),
    ],
)
def test_an_endpoint_ip_that_is_no_address_is_refused(codec: OcsfCodec, doc: dict[str, Any], field: str) -> None:
    assert refusal(codec, {**doc, "time": T}) == (field, "must be an IP address")


def test_endpoint_addresses_become_the_entities_any_event_names(codec: OcsfCodec) -> None:
    doc = {
        "class_uid": 4001,
        "activity_id": 1,
        "time": T,
        "dst_endpoint": {"ip": "FE80::A%eth0", "port": 22, "hostname": "Bastion.Example."},
        "src_endpoint": {"ip": "::ffff:192.0.2.9"},
    }
    out = codec.decode(orjson.dumps(doc))
    assert out.rejected == []
    named = {(e["type"], e["value"]) for e in entities.derive(out.events[0])}
    assert named == {("ip", "fe80::a"), ("domain", "bastion.example"), ("ip", "192.0.2.9")}


def test_an_event_is_measured_as_stored_whether_a_line_or_an_array_item() -> None:
    registry = load_registry(external=False)
    small = OcsfCodec(type_validator=registry.event_types.get, max_event_bytes=4096, clock=lambda: 1_800_000_000.0)
    doc = {"class_uid": 1007, "activity_id": 1, "time": T, "process": {"file": {"path": "/" + "p" * 2500}}}
    assert len(orjson.dumps(doc)) < 4096  # the line fits; stored, its path is there twice (mapped and original)
    as_line = small.decode(orjson.dumps(doc) + b"\n" + orjson.dumps(doc))
    as_array = small.decode(orjson.dumps([doc, doc]))
    for out in (as_line, as_array):
        assert out.events == []
        assert [(r.index, r.field) for r in out.rejected] == [(0, "event"), (1, "event")]
        assert out.rejected[0].reason.startswith("larger than 4096 bytes as stored")
