"""The secrets honeytokens are made of, and the scanner finding them in stored events (no server)."""

from __future__ import annotations

import re

import orjson
import pytest
from pydantic import ValidationError

from agentwatch.soc.honeytokens import generate
from agentwatch.soc.honeytokens.scan import NeedleIndex, field_of
from agentwatch.soc.honeytokens.settings import HoneytokenSettings

SHAPES = {
    ("api_key", "openai"): r"sk-proj-[A-Za-z0-9]{64}",
    ("api_key", "anthropic"): r"sk-ant-api03-[A-Za-z0-9]{86}AA",
    ("api_key", "aws"): r"AKIA[A-Z2-7]{16}:[A-Za-z0-9]{40}",
    ("api_key", "github"): r"ghp_[A-Za-z0-9]{36}",
    ("api_key", "generic"): r"[A-Za-z0-9]{40}",
    ("url", "track"): r"https://canary\.example/api/v1/honeytokens/track/[A-Za-z0-9]{32}",
    ("credential", "password"): r"svc-[a-z]{6}:[A-Za-z0-9]{24}",
    ("text", "marker"): r"[A-Za-z0-9]{32}",
}


@pytest.mark.parametrize(("kind", "style"), list(SHAPES))
def test_each_style_has_its_shape_and_its_needles_are_runs_of_the_value(kind: str, style: str) -> None:
    a = generate.make(kind, style, base_url="https://canary.example/")
    b = generate.make(kind, style, base_url="https://canary.example/")
    assert re.fullmatch(SHAPES[(kind, style)], a.value), a.value
    assert a.value != b.value
    for needle in a.needles:
        assert len(needle) >= 20 and needle in a.value and needle.isalnum()
    assert a.digests == [generate.digest(n) for n in a.needles]
    assert not any(n in a.hint for n in a.needles)  # the hint shows too little to be matched


def test_the_parts_and_the_prefix_and_username_choices() -> None:
    aws = generate.make("api_key", "aws")
    assert aws.needles == [aws.parts["access_key_id"], aws.parts["secret_access_key"]]
    cred = generate.make("credential", "password", username="deploy-bot")
    assert cred.parts["username"] == "deploy-bot" and cred.value == f"deploy-bot:{cred.parts['password']}"
    assert cred.needles == [cred.parts["password"]]  # the user name is no secret
    marker = generate.make("text", "marker", prefix="Codename")
    assert marker.value.startswith("Codename-") and marker.needles == [marker.value.removeprefix("Codename-")]
    url = generate.make("url", "track", base_url="http://10.0.0.1:7777")
    assert url.track_id is not None and url.value == f"http://10.0.0.1:7777/api/v1/honeytokens/track/{url.track_id}"


def index_of(*secrets: generate.Secret) -> NeedleIndex:
    return NeedleIndex.of([(f"t{i}", generate.digest(n), len(n)) for i, s in enumerate(secrets) for n in s.needles])


def test_an_empty_index_finds_nothing_and_builds_no_pattern() -> None:
    empty = NeedleIndex.of([])
    assert len(empty) == 0 and empty.probe == b""
    assert empty.scan(b'{"a": "AKIAAAAAAAAAAAAAAAAA"}') == {}


def test_needles_are_found_in_json_also_after_escapes_and_percent_encoding() -> None:
    key = generate.make("api_key", "openai")
    aws = generate.make("api_key", "aws")
    index = index_of(key, aws)
    run = key.needles[0]
    body = {"data": {"messages": [{"role": "user", "content": f"use\n{key.value} please"}]}}
    assert index.scan(orjson.dumps(body)) == {"t0": run}
    assert index.scan(f'"x\\u0009{aws.parts["secret_access_key"]}"'.encode()) == {"t1": aws.parts["secret_access_key"]}
    assert index.scan(f"GET /?k=%2F{aws.parts['access_key_id']}".encode()) == {"t1": aws.parts["access_key_id"]}
    # glued to other letters it is another run, and a near miss is not a hit
    assert index.scan(f"xyz{run}".encode()) == {}
    assert index.scan(run[:-1].encode() + (b"A" if run[-1] != "A" else b"B")) == {}


def test_the_field_holding_a_needle_is_named() -> None:
    body = {"data": {"tool": {"name": "sh"}, "arguments": {"argv": ["curl", "-H", "Bearer NEEDLE123"]}}}
    assert field_of(body, "NEEDLE123") == "data.arguments.argv.2"
    assert field_of({"data": {"NEEDLE123": 1}}, "NEEDLE123") == "data.NEEDLE123"
    assert field_of({"data": {}}, "NEEDLE123") == "event"


@pytest.mark.parametrize("url", ["ftp://canary.example", "https://", "https://c.example/?a=1", "https://c.example/a b"])
def test_public_url_must_be_a_plain_http_base(url: str) -> None:
    with pytest.raises(ValidationError) as err:
        HoneytokenSettings(public_url=url)
    assert err.value.errors()[0]["loc"] == ("public_url",)
    assert HoneytokenSettings(public_url="https://canary.example/hooks/").public_url == "https://canary.example/hooks"
