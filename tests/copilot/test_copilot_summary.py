"""The optional LLM summary: asked only with ``?summary=true`` and ``[llm]`` configured, sent
masked, and never in the way of the suggestions (off or failing: ``summary`` is null and
``summary_error`` says why). The backend is a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.config import LlmSettings
from tests.copilot.seed import alert, context, kinds, unique
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, open_settings, run_server

ANSWER = "Two alerts on one host: open a case and assign it."


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm("127.0.0.1", ANSWER) as f:
        yield f


@pytest.fixture(scope="module")
def srv(fake: FakeLlm, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    llm = LlmSettings(enabled=True, base_url=fake.url, model="summariser-1", allow_private=True, timeout_s=5.0)
    with run_server(settings.model_copy(update={"llm": llm})) as s:
        yield s


def test_a_summary_is_added_when_asked_and_its_input_is_masked(srv: RunningServer, fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    host = unique()
    first = alert(srv.aw.engine, ("host", host))
    alert(srv.aw.engine, ("host", host), title="login with password=hunter2-very-secret")
    with srv.client() as c:
        plain = context(c, "alert", first["id"])
        assert plain["summary"] is None and "summary_error" not in plain and fake.got == []
        doc = context(c, "alert", first["id"], params={"summary": "true"})
    assert doc["summary"] == {"text": ANSWER, "model": "summariser-1"}
    assert "related_alerts" in kinds(doc)  # the suggestions are there as without a summary
    (sent,) = fake.got
    prompt = sent["messages"][1]["content"]
    assert "related_alerts" in prompt and "password=" in prompt
    assert "hunter2-very-secret" not in prompt


def test_a_failing_backend_leaves_the_summary_out_and_says_why(srv: RunningServer, fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    fake.status = 500
    fresh = alert(srv.aw.engine, ("host", unique()))
    with srv.client() as c:
        doc = context(c, "alert", fresh["id"], params={"summary": "true"})
    assert doc["summary"] is None and "500" in doc["summary_error"]
    assert "unassigned" in kinds(doc)
