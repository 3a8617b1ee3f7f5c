"""The entities an event names: in the order found, each once, with the id of its type and value."""

from __future__ import annotations

import uuid

from agentwatch.events.entities import NAMESPACE, derive
from agentwatch.events.model import Event


def make(event_type: str, body: dict) -> Event:
    return Event(body=body, event_id="e1", event_type=event_type, ts=0.0, received_at=0.0, agent=body.get("agent"))


def test_a_network_event_names_its_host_user_process_agent_and_addresses_in_that_order_each_once():
    body = {
        "host": {"hostname": "build-7"},
        "actor": {"user": "ci"},
        "process": {"pid": 4, "exe": "/usr/bin/curl", "name": "curl"},
        "agent": "claude-code",
        "data": {
            "dest": {"ip": "10.1.2.3", "domain": "Example.COM."},
            "src": {"ip": "10.1.2.3"},  # the same address again: one entity
            "domain": "example.com",  # the same name in another spelling: one entity
        },
    }
    found = derive(make("network.connect", body))
    assert [(x["type"], x["value"]) for x in found] == [
        ("host", "build-7"),
        ("user", "ci"),
        ("process", "/usr/bin/curl"),
        ("agent", "claude-code"),
        ("ip", "10.1.2.3"),
        ("domain", "example.com"),
    ]
    for x in found:  # a UUID5 of "type:value" under the entity namespace, as the API documents
        assert x["id"] == str(uuid.uuid5(NAMESPACE, f"{x['type']}:{x['value']}"))


def test_two_events_naming_one_entity_give_it_the_same_id_and_each_event_its_own_list():
    a = derive(make("ai.request", {"data": {"model": {"id": "gpt-4o"}}}))
    b = derive(
        make("ai.request", {"data": {"model": {"id": "gpt-4o"}, "provider": {"endpoint": "https://api.x.io/v1"}}})
    )
    assert [(x["type"], x["value"]) for x in b] == [("domain", "api.x.io"), ("model", "gpt-4o")]
    assert a == [b[1]]
    assert a is not b


def test_an_event_naming_nothing_has_no_entities():
    assert derive(make("agent.message", {"data": {"text": "hi"}})) == []
