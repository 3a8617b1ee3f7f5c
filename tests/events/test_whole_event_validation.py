"""One schema for an OISP event's envelope and payload together (``oisp_schema.event_validator``):
it must find an event valid exactly when the envelope's validator and the payload's both do,
since ``normalize`` asks it alone for a valid event and falls back to the two (which name the
field and the rule) for any other."""

from __future__ import annotations

import copy
import json

import pytest

from agentwatch.events import oisp_schema
from agentwatch.events.model import EventError
from agentwatch.events.normalize import normalize, oisp_data_validator
from tests.conftest import OISP_EXAMPLES

EXAMPLES = sorted(OISP_EXAMPLES.glob("*.json"))
WRONG = [12345, "text", None, [], {}, True, -1, "x" * 5000]


def both_valid(body: dict) -> bool:
    if not oisp_schema.envelope_validator().is_valid(body):
        return False
    data = body.get("data")
    compiled = oisp_schema.data_validator(body["event_type"])
    return data is None or compiled is None or compiled.is_valid(data)


def mutations(body: dict):
    """The body, then the body with one field (of the envelope or of its payload) replaced."""
    yield body
    for key in list(body):
        for value in WRONG:
            changed = copy.deepcopy(body)
            changed[key] = value
            yield changed
    for key in list(body.get("data") or {}):
        for value in WRONG:
            changed = copy.deepcopy(body)
            changed["data"][key] = value
            yield changed
    for extra, value in (("severity", 11), ("sequence", -1), ("session_id", ""), ("unknown_field", 1)):
        changed = copy.deepcopy(body)
        changed[extra] = value
        yield changed


def test_the_spec_examples_are_all_there():
    assert len(EXAMPLES) == 9


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_one_call_agrees_with_envelope_and_payload(path):
    body = json.loads(path.read_text())
    whole = oisp_schema.event_validator(body["event_type"])
    assert whole is not None
    assert whole.is_valid(body)
    verdicts = [(whole.is_valid(b), both_valid(b)) for b in mutations(body)]
    assert all(one == two for one, two in verdicts), [v for v in verdicts if v[0] != v[1]]
    assert sum(not two for _, two in verdicts) > 20  # the mutations broke rules of both kinds


def test_a_type_without_a_payload_schema_has_no_whole_validator():
    assert oisp_schema.event_validator("no.such_type") is None


def test_a_payload_error_is_still_named_by_field():
    body = json.loads((OISP_EXAMPLES / "ai-request-openai.json").read_text())
    body["data"]["model"] = 5
    with pytest.raises(EventError) as caught:
        normalize(body, type_validator=oisp_data_validator)
    assert (caught.value.field, caught.value.rule) == ("data.model", '5 is not of type "object"')
    body = json.loads((OISP_EXAMPLES / "ai-request-openai.json").read_text())
    body["ts"] = 5
    with pytest.raises(EventError) as caught:
        normalize(body, type_validator=oisp_data_validator)
    assert caught.value.field == "ts"
