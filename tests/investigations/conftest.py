"""Fixtures of the investigator's tests: a scripted fake LLM on 127.0.0.3 and, per module, one
server (SQLite and PostgreSQL) using it with small bounds (:data:`support.BOUNDS`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.config import LlmSettings
from tests.investigations.support import BOUNDS, LLM_KEY, MODEL
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, open_settings, run_server


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm("127.0.0.3") as f:
        yield f


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory, fake: FakeLlm) -> Iterator[RunningServer]:
    base = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    llm = LlmSettings(enabled=True, base_url=fake.url, model=MODEL, api_key=LLM_KEY, allow_private=True, timeout_s=5)
    settings = base.model_copy(
        update={
            "llm": llm,
            "investigations": base.investigations.model_copy(update=BOUNDS),
            "sla": base.sla.model_copy(update={"enabled": False}),
        }
    )
    with run_server(settings) as s:
        yield s


@pytest.fixture
def c(srv: RunningServer) -> Iterator[Any]:
    with srv.client() as client:
        yield client
