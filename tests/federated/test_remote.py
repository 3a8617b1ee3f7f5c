"""Outbound requests of a target pass the SSRF guard at connect time too: a target whose address
turns out to be refused (here a loopback URL slipped past the settings' check) is an error of
that target alone, and nothing is sent."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine

from agentwatch.federated.dialect import Window
from agentwatch.federated.fanout import run_one
from agentwatch.federated.language import parse
from agentwatch.federated.settings import TargetSettings
from tests.federated.fakes import fake_siems


def test_a_refused_address_is_caught_when_connecting() -> None:
    with fake_siems() as fake:
        target = TargetSettings.model_construct(
            name="sneaky",
            kind="elastic",
            url=fake.url,
            allow_private=False,
            index="logs",
            field_map={},
            credential_env=None,
            timeout_s=5.0,
            max_rows=10,
            max_response_bytes=65536,
        )
        status, rows = asyncio.run(run_one(target, parse('host = "a"'), Window(0.0, 60.0), create_engine("sqlite://")))
        assert fake.got["elastic"] == []
    assert rows == []
    assert status["status"] == "error"
    assert status["reason"].startswith("refused by the SSRF guard (host '127.0.0.1' refused: 127.0.0.1 is a loopback")
