"""``Event.data``, ``Event.process``, ``Event.hostname`` and ``Event.pid``: read from the body
once, when the Event is made."""

from __future__ import annotations

from agentwatch.events.model import Event


def make(body: dict) -> Event:
    return Event(body=body, event_id="e1", event_type="process.exec", ts=0.0, received_at=0.0)


def test_data_and_process_are_the_bodys_own_objects():
    data, process = {"exe": "/bin/sh"}, {"pid": 7}
    e = make({"data": data, "process": process})
    assert e.data is data and e.process is process


def test_a_body_without_them_or_with_other_values_gives_empty_objects():
    for body in ({}, {"data": None, "process": None}, {"data": [1, 2], "process": "sh"}):
        e = make(body)
        assert e.data == {} and e.process == {}


def test_they_are_derived_fields_not_arguments_and_not_compared():
    a = make({"data": {"x": 1}})
    b = make({"data": {"x": 1}})
    assert a == b
    assert "process=" not in repr(a)  # the body shows them


def test_hostname_is_the_hosts_name_only_when_it_is_text():
    assert make({"host": {"hostname": "web-1"}}).hostname == "web-1"
    for body in ({}, {"host": "web-1"}, {"host": {"hostname": 7}}, {"host": {"hostname": None}}):
        assert make(body).hostname is None, body


def test_pid_is_an_integer_both_stores_can_hold_or_none():
    assert make({"process": {"pid": 4242}}).pid == 4242
    assert make({"process": {"pid": -(2**63)}}).pid == -(2**63)
    assert make({"process": {"pid": 2**63 - 1}}).pid == 2**63 - 1
    for pid in (2**63, -(2**63) - 1, True, "12", 1.0, None):
        assert make({"process": {"pid": pid}}).pid is None, pid
