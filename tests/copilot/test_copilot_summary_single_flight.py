"""Identical ``?summary=true`` GETs arriving together share one backend call: the later ones wait
for the first's answer (its failure too, which is still not kept), a first request whose client
went away neither leaves them waiting nor spoils the subject, and the number of summaries being
made at once is bounded (``copilot.summary_in_flight``). The backend is the fake
OpenAI-compatible server on loopback, answering late and counting its calls; the server is real,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from agentwatch.config import LlmSettings
from agentwatch.soc.copilot.settings import CopilotSettings
from agentwatch.soc.copilot.summary import summarise
from agentwatch.soc.copilot.summary_cache import SummaryCache
from tests.copilot.seed import CONTEXT, alert, unique
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, open_settings, run_server

ANSWER = "One alert on one host: assign it first."
SUMMARY = {"text": ANSWER, "model": "summariser-1"}
LATE_S = 1.0  # the backend's delay: long enough for a second request to arrive meanwhile


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm("127.0.0.1", ANSWER) as f:
        yield f


@pytest.fixture(scope="module")
def srv(fake: FakeLlm, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    llm = LlmSettings(enabled=True, base_url=fake.url, model="summariser-1", allow_private=True, timeout_s=5.0)
    copilot = settings.copilot.model_copy(update={"summary_in_flight": 1})
    with run_server(settings.model_copy(update={"llm": llm, "copilot": copilot})) as s:
        yield s


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as p:
        yield p


def _get(srv: RunningServer, alert_id: str, timeout: float = 30) -> Callable[[], httpx.Response]:
    def go() -> httpx.Response:
        with srv.client(timeout=timeout) as c:
            return c.get(f"{CONTEXT}/alert/{alert_id}", params={"summary": "true"})

    return go


def _until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _two_at_once(srv: RunningServer, fake: FakeLlm, pool: ThreadPoolExecutor, alert_id: str) -> list[Any]:
    """Two GETs for the alert, the second sent while the backend is still answering the first."""
    first = pool.submit(_get(srv, alert_id))
    _until(lambda: len(fake.sent) == 1, "the backend was not asked")
    second = pool.submit(_get(srv, alert_id))
    return [f.result(timeout=30) for f in (first, second)]


def test_two_identical_requests_at_once_share_one_backend_call(
    srv: RunningServer, fake: FakeLlm, pool: ThreadPoolExecutor
) -> None:
    fake.reset(ANSWER)
    fake.delay_s = LATE_S
    fresh = alert(srv.aw.engine, ("host", unique()))
    answers = _two_at_once(srv, fake, pool, fresh["id"])
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    docs = [r.json() for r in answers]
    assert docs[0]["summary"] == docs[1]["summary"] == SUMMARY
    assert all("summary_error" not in d for d in docs)
    assert [x["kind"] for x in docs[0]["suggestions"]] == [x["kind"] for x in docs[1]["suggestions"]]
    assert len(fake.sent) == 1
    with srv.client() as c:  # and kept afterwards, as a single request's summary is
        assert c.get(f"{CONTEXT}/alert/{fresh['id']}", params={"summary": "true"}).json()["summary"] == SUMMARY
    assert len(fake.sent) == 1


def test_a_failed_call_is_shared_by_those_waiting_for_it_and_not_kept(
    srv: RunningServer, fake: FakeLlm, pool: ThreadPoolExecutor
) -> None:
    fake.reset(ANSWER)
    fake.delay_s, fake.status = LATE_S, 503
    fresh = alert(srv.aw.engine, ("host", unique()))
    docs = [r.json() for r in _two_at_once(srv, fake, pool, fresh["id"])]
    assert len(fake.sent) == 1
    for doc in docs:
        assert doc["summary"] is None and "503" in doc["summary_error"]
    assert docs[0]["summary_error"] == docs[1]["summary_error"]
    fake.status, fake.delay_s = 200, 0.0
    with srv.client() as c:  # the failure was not kept: asked again
        assert c.get(f"{CONTEXT}/alert/{fresh['id']}", params={"summary": "true"}).json()["summary"] == SUMMARY
    assert len(fake.sent) == 2


def test_a_first_request_whose_client_went_away_leaves_no_one_waiting_and_the_subject_usable(
    srv: RunningServer, fake: FakeLlm, pool: ThreadPoolExecutor
) -> None:
    fake.reset(ANSWER)
    fake.delay_s = LATE_S
    fresh = alert(srv.aw.engine, ("host", unique()))
    impatient = pool.submit(_get(srv, fresh["id"], timeout=0.3))
    _until(lambda: len(fake.sent) == 1, "the backend was not asked")
    waiting = pool.submit(_get(srv, fresh["id"]))
    with pytest.raises(httpx.TimeoutException):
        impatient.result(timeout=30)
    answered = waiting.result(timeout=10)
    assert answered.status_code == 200 and answered.json()["summary"] == SUMMARY
    assert len(fake.sent) == 1
    with srv.client() as c:
        assert c.get(f"{CONTEXT}/alert/{fresh['id']}", params={"summary": "true"}).json()["summary"] == SUMMARY
    assert len(fake.sent) == 1


def test_past_the_in_flight_bound_a_new_subject_gets_no_summary_and_is_told_why(
    srv: RunningServer, fake: FakeLlm, pool: ThreadPoolExecutor
) -> None:
    fake.reset(ANSWER)
    fake.delay_s = LATE_S
    busy, other = (alert(srv.aw.engine, ("host", unique())) for _ in range(2))
    first: Future[httpx.Response] = pool.submit(_get(srv, busy["id"]))
    _until(lambda: len(fake.sent) == 1, "the backend was not asked")
    joining = pool.submit(_get(srv, busy["id"]))  # the same subject joins the call under way
    with srv.client() as c:
        refused = c.get(f"{CONTEXT}/alert/{other['id']}", params={"summary": "true"})
    assert not first.done()  # told at once, not after waiting for the call under way
    assert refused.status_code == 200, refused.text
    assert refused.json()["summary"] is None
    assert "copilot.summary_in_flight (1)" in refused.json()["summary_error"]
    assert refused.json()["suggestions"]  # the suggestions are answered all the same
    assert first.result(timeout=30).json()["summary"] == joining.result(timeout=30).json()["summary"] == SUMMARY
    assert len(fake.sent) == 1
    fake.delay_s = 0.0
    with srv.client() as c:  # the call ended: a new subject may be summarised again
        assert c.get(f"{CONTEXT}/alert/{other['id']}", params={"summary": "true"}).json()["summary"] == SUMMARY
    assert len(fake.sent) == 2


async def test_cancelling_the_first_caller_does_not_cancel_the_call_its_waiters_share(fake: FakeLlm) -> None:
    """The request task itself cancelled (as a server cancels a request whose client left): the
    one backend call goes on, the waiter gets its summary and the summary is kept."""
    fake.reset(ANSWER)
    fake.delay_s = 0.5
    llm = LlmSettings(enabled=True, base_url=fake.url, model="summariser-1", allow_private=True, timeout_s=5.0)
    cache = SummaryCache(max_entries=10, ttl_s=60, max_in_flight=4)
    first = asyncio.create_task(summarise(llm, "alert", "a-1", [], cache))
    while not fake.sent:
        await asyncio.sleep(0.01)
    second = asyncio.create_task(summarise(llm, "alert", "a-1", [], cache))
    await asyncio.sleep(0.05)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 5) == (SUMMARY, None)
    assert cache.in_flight == 0
    assert await summarise(llm, "alert", "a-1", [], cache) == (SUMMARY, None)  # kept
    assert len(fake.sent) == 1


async def test_when_every_caller_is_cancelled_the_key_is_freed_and_usable(fake: FakeLlm) -> None:
    fake.reset(ANSWER)
    fake.delay_s = 0.3
    llm = LlmSettings(enabled=True, base_url=fake.url, model="summariser-1", allow_private=True, timeout_s=5.0)
    cache = SummaryCache(max_entries=10, ttl_s=60, max_in_flight=1)
    callers = [asyncio.create_task(summarise(llm, "alert", "a-2", [], cache)) for _ in range(3)]
    while not fake.sent:
        await asyncio.sleep(0.01)
    for t in callers:
        t.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    deadline = time.monotonic() + 5
    while cache.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert cache.in_flight == 0  # the call ended on its own and let go of its key
    assert await summarise(llm, "alert", "a-2", [], cache) == (SUMMARY, None)
    assert len(fake.sent) == 1  # what it answered was kept


@pytest.mark.parametrize("bad", [0, -1, 10_001, "many"])
def test_the_in_flight_bound_is_validated(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        CopilotSettings(summary_in_flight=bad)
    assert caught.value.errors()[0]["loc"] == ("summary_in_flight",)
