"""The copilot's LLM summary is kept per subject: asking again for an unchanged context does not
ask the model again, a changed one does, and the kept summaries are bounded in number (least
recently used out) and in age. The backend is a fake OpenAI-compatible server on loopback that
counts the calls it gets; the server is real, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agentwatch.config import LlmSettings
from tests.copilot.seed import alert, context, kinds, unique
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, open_settings, run_server

ANSWER = "One alert, nobody on it: assign it."
KEEP = 2  # copilot.summary_cache_entries
TTL_S = 1.5  # copilot.summary_cache_ttl_s


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm("127.0.0.1", ANSWER) as f:
        yield f


@pytest.fixture(scope="module")
def srv(fake: FakeLlm, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    llm = LlmSettings(enabled=True, base_url=fake.url, model="summariser-1", allow_private=True, timeout_s=5.0)
    copilot = settings.copilot.model_copy(update={"summary_cache_entries": KEEP, "summary_cache_ttl_s": TTL_S})
    with run_server(settings.model_copy(update={"llm": llm, "copilot": copilot})) as s:
        yield s


def _summary(c: object, alert_id: str) -> dict[str, object]:
    doc = context(c, "alert", alert_id, params={"summary": "true"})
    assert "summary_error" not in doc, doc["summary_error"]
    return doc


def test_an_unchanged_alert_is_summarised_once_and_a_changed_one_again(srv: RunningServer, fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    fresh = alert(srv.aw.engine, ("host", unique()))
    with srv.client() as c:
        first = _summary(c, fresh["id"])
        second = _summary(c, fresh["id"])
        assert first["summary"] == second["summary"] == {"text": ANSWER, "model": "summariser-1"}
        assert len(fake.sent) == 1  # the second GET reused the summary
        assert "unassigned" in kinds(second)
        changed = c.patch(f"/api/v1/alerts/{fresh['id']}", json={"assignee": "analyst-1"})
        assert changed.status_code == 200, changed.text
        after = _summary(c, fresh["id"])
        assert "unassigned" not in kinds(after)
        assert len(fake.sent) == 2  # what the summary is made from changed: asked again
        assert "unassigned" not in fake.got[1]["messages"][1]["content"]
        _summary(c, fresh["id"])
        assert len(fake.sent) == 2


def test_at_most_the_configured_number_of_summaries_are_kept(srv: RunningServer, fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    a, b, d = (alert(srv.aw.engine, ("host", unique())) for _ in range(3))
    with srv.client() as c:
        for one in (a, b, d):
            _summary(c, one["id"])
        assert len(fake.sent) == 3
        _summary(c, d["id"])  # kept: the newest
        assert len(fake.sent) == 3
        _summary(c, a["id"])  # the least recently used went out when d came in
        assert len(fake.sent) == 4
        _summary(c, d["id"])  # used more recently than b: still kept when a came back
        assert len(fake.sent) == 4
        _summary(c, b["id"])
        assert len(fake.sent) == 5


def test_a_kept_summary_expires(srv: RunningServer, fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    fresh = alert(srv.aw.engine, ("host", unique()))
    with srv.client() as c:
        _summary(c, fresh["id"])
        _summary(c, fresh["id"])
        assert len(fake.sent) == 1
        time.sleep(TTL_S + 0.2)
        _summary(c, fresh["id"])
        assert len(fake.sent) == 2


def test_a_failure_is_not_kept(srv: RunningServer, fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    fake.status = 500
    fresh = alert(srv.aw.engine, ("host", unique()))
    with srv.client() as c:
        failed = context(c, "alert", fresh["id"], params={"summary": "true"})
        assert failed["summary"] is None and "500" in failed["summary_error"]
        fake.status = 200
        assert _summary(c, fresh["id"])["summary"] == {"text": ANSWER, "model": "summariser-1"}
        assert len(fake.sent) == 2
