"""Sigma rule suggestions (``/api/v1/sigma/rule-suggestions``): patterns of true-positive
feedback, and rules drafted for them by a fake OpenAI-compatible backend (a real HTTP server on
127.0.0.4 that answers what each test sets and records what it was sent)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agentwatch.config import LlmSettings, Settings
from tests.detect.helpers import alerts, wait_for, with_detection
from tests.detect.test_explain import AWS_KEY, INJECTION, make_alert_on
from tests.soc.helpers import auth_server
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, run_server

FAKE_HOST = "127.0.0.4"
ROUTE = "/api/v1/sigma/rule-suggestions"
RULE = """title: Download piped to a shell by an agent
id: {rule_id}
status: experimental
description: An agent ran a download piped into a shell.
logsource:
  product: agentwatch
  category: tool_call
detection:
  selection:
    tool_args|contains: '| bash'
  condition: selection
level: high
tags:
  - attack.execution
  - attack.t1059
"""
GOOD = "Here is the rule.\n```yaml\n" + RULE + "```\nIt matches the confirmed alerts."
BROKEN = "```yaml\ntitle: half a rule\nid: {rule_id}\nlogsource:\n  product: agentwatch\n```"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm(FAKE_HOST, GOOD) as f:
        yield f


@pytest.fixture(autouse=True)
def _reset(fake: FakeLlm) -> None:
    fake.reset(GOOD)


def llm_for(fake: FakeLlm, **kw: Any) -> LlmSettings:
    return LlmSettings(enabled=True, base_url=fake.url, model="drafter-1", allow_private=True, timeout_s=5.0, **kw)


@pytest.fixture(scope="module")
def srv(fake: FakeLlm, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base).model_copy(update={"llm": llm_for(fake)})) as s:
        yield s


def verdict(c: Any, alert_id: str, feedback: str, note: str = "") -> None:
    r = c.post(f"/api/v1/alerts/{alert_id}/feedback", json={"feedback": feedback, "note": note})
    assert r.status_code == 204, r.text


def suggestions(c: Any) -> dict[str, dict[str, Any]]:
    r = c.get(ROUTE)
    assert r.status_code == 200, r.text
    return {s["pattern_key"]: s for s in r.json()["suggestions"]}


def confirmed_pattern(c: Any) -> tuple[str, list[str]]:
    """Two alerts of AW-TOOL-001 on hosts of their own, three TP verdicts between them: the
    pattern key of the rule and the entity kind "host", and the two alert ids."""
    tag = uuid.uuid4().hex[:8]
    first, second = make_alert_on(c, f"sg-{tag}-a"), make_alert_on(c, f"sg-{tag}-b")
    verdict(c, first, "tp", f"confirmed: the key {AWS_KEY} left in the command")
    verdict(c, second, "tp", "confirmed")
    verdict(c, second, "tp", "seen again")
    alert = c.get(f"/api/v1/alerts/{first}").json()
    assert "host" in {e["type"] for e in alert["entities"]}
    return f"{alert['type']}:AW-TOOL-001:host", [first, second]


@contextmanager
def isolated(srv: RunningServer) -> Iterator[Any]:
    """A client on ``srv`` whose store holds no earlier test's feedback nor drafts (every test's
    pattern is AW-TOOL-001's)."""
    with srv.client() as c:
        for a in alerts(c, limit=1000)["alerts"]:
            c.delete(f"/api/v1/alerts/{a['id']}")
        for kind in ("atr", "sigma"):
            assert c.delete(f"{ROUTE}/{kind}:AW-TOOL-001:host").status_code in (204, 404)
        yield c


def test_a_pattern_is_listed_once_it_has_enough_true_positives_and_more_than_false_ones(srv: RunningServer) -> None:
    with isolated(srv) as c:
        tag = uuid.uuid4().hex[:8]
        first, second = make_alert_on(c, f"sg-{tag}-a"), make_alert_on(c, f"sg-{tag}-b")
        kind = c.get(f"/api/v1/alerts/{first}").json()["type"]
        key = f"{kind}:AW-TOOL-001:host"
        verdict(c, first, "tp")
        verdict(c, second, "tp")
        assert key not in suggestions(c)  # two true positives: the default needs three
        verdict(c, second, "tp")
        listed = suggestions(c)[key]
        assert (listed["tp"], listed["fp"], listed["alerts"]) == (3, 0, 2)
        assert set(listed["alert_ids"]) == {first, second}
        assert listed["rule_id"] == "AW-TOOL-001" and listed["entity_type"] == "host"
        assert listed["drafted"] is False
        for _ in range(3):
            verdict(c, first, "fp")
        assert key not in suggestions(c)  # as many false positives as true ones


def test_a_draft_is_checked_kept_and_dropped_and_never_loaded(srv: RunningServer, fake: FakeLlm) -> None:
    with isolated(srv) as c:
        key, ids = confirmed_pattern(c)
        r = c.post(f"{ROUTE}/{key}")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["cached"] is False and doc["model"] == "drafter-1"
        asked_id = re.search(r"Use the id ([0-9a-f-]{36})", fake.got[0]["messages"][0]["content"]).group(1)
        assert doc["yaml"] == RULE.replace("{rule_id}", asked_id).strip()  # the fenced block, without the prose
        assert doc["validation"] == {"valid": True, "problems": [], "rule_ids": [asked_id]}
        assert {n["alert_id"] for n in doc["evidence"]["feedback"]} == set(ids)
        assert doc["evidence"]["events"], "the alerts' events are shown as evidence"
        # secrets are masked and the recorded text is fenced as data before the backend sees it
        sent = fake.got[0]["messages"][1]["content"]
        assert AWS_KEY not in sent and AWS_KEY not in r.text
        assert INJECTION in sent and "untrusted" in fake.got[0]["messages"][0]["content"]
        # kept: a second request answers the same draft without asking the backend
        again = c.post(f"{ROUTE}/{key}")
        assert again.json()["cached"] is True and again.json()["yaml"] == doc["yaml"]
        assert len(fake.got) == 1
        assert suggestions(c)[key]["drafted"] is True
        # a draft is text for an analyst, not a rule of the engine
        assert c.get(f"/api/v1/sigma/rules/{asked_id}").status_code == 404
        assert c.delete(f"{ROUTE}/{key}").status_code == 204
        assert c.delete(f"{ROUTE}/{key}").status_code == 404
        assert suggestions(c)[key]["drafted"] is False
        assert c.post(f"{ROUTE}/{key}").json()["cached"] is False
        assert len(fake.got) == 2


def test_a_draft_the_sigma_loader_refuses_is_answered_with_its_problems(srv: RunningServer, fake: FakeLlm) -> None:
    fake.answer = BROKEN
    with isolated(srv) as c:
        key, _ = confirmed_pattern(c)
        doc = c.post(f"{ROUTE}/{key}").json()
        assert doc["validation"]["valid"] is False
        assert doc["validation"]["problems"] and doc["validation"]["problems"][0]["message"]


def test_backend_failures_answer_502_and_keep_nothing(srv: RunningServer, fake: FakeLlm) -> None:
    with isolated(srv) as c:
        key, _ = confirmed_pattern(c)
        fake.status = 500
        r = c.post(f"{ROUTE}/{key}")
        assert r.status_code == 502 and r.json()["error"]["code"] == "BAD_GATEWAY"
        assert suggestions(c)[key]["drafted"] is False


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("nothing", "alert_type:rule_id:entity_type"),
        ("sigma:r1:planet", "entity type must be one of"),
        ("weather:r1:host", "alert type must be one of"),
        ("sigma::host", "rule id must be"),
        ("sigma:r%01:host", "without control characters"),
        ("sigma:" + "r" * 400 + ":host", "longer than"),
    ],
)
def test_bad_pattern_keys_are_400_naming_the_field(srv: RunningServer, key: str, rule: str) -> None:
    with srv.client() as c:
        for method in ("POST", "DELETE"):
            r = c.request(method, f"{ROUTE}/{key}")
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith("pattern_key:")
            assert rule in r.json()["error"]["message"]


def test_other_bad_requests(srv: RunningServer) -> None:
    with srv.client() as c:
        assert c.get(ROUTE, params={"limit": 0}).status_code == 400
        assert c.get(ROUTE, params={"limit": 501}).status_code == 400
        assert c.get(ROUTE, params={"page": 2}).status_code == 400  # not a parameter of this list
        r = c.post(f"{ROUTE}/sigma:never-confirmed:host")
        assert r.status_code == 404 and r.json()["error"]["details"]["pattern_key"] == "sigma:never-confirmed:host"


def test_drafting_is_503_while_the_backend_is_off(tmp_path: Any, database_url: str) -> None:
    cfg = with_detection(Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False}))
    with run_server(cfg) as s, s.client() as c:
        r = c.post(f"{ROUTE}/atr:AW-TOOL-001:host")
        assert r.status_code == 503 and "llm" in r.json()["error"]["message"]


def test_listing_needs_alert_reading_and_drafting_rule_writing(tmp_path: Any, database_url: str) -> None:
    with auth_server(database_url, tmp_path) as a:
        c = a.client
        _, rules_only = a.key("rules:read")
        _, both = a.key("rules:read", "alerts:read")
        _, writer_without_alerts = a.key("rules:write", "rules:read")
        assert c.get(ROUTE, headers=rules_only).status_code == 403
        assert c.get(ROUTE, headers=both).status_code == 200
        assert c.post(f"{ROUTE}/atr:r:host", headers=writer_without_alerts).status_code == 403
        assert c.post(f"{ROUTE}/atr:r:host", headers=both).status_code == 403
        assert c.delete(f"{ROUTE}/atr:r:host", headers=both).status_code == 403


def test_verdicts_on_deleted_alerts_count_for_nothing(srv: RunningServer) -> None:
    with isolated(srv) as c:
        key, ids = confirmed_pattern(c)
        assert key in suggestions(c)
        assert c.delete(f"/api/v1/alerts/{ids[1]}").status_code in (200, 204)
        wait_for(lambda: key not in suggestions(c))  # one TP left on the alert that stays


def test_expired_drafts_are_purged_by_maintenance_without_any_request(
    fake: FakeLlm, tmp_path: Any, database_url: str
) -> None:
    from agentwatch.config import MaintenanceSettings
    from agentwatch.detect.suggestion_draft import KEY_PREFIX, cache_key
    from agentwatch.store import kv

    base = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False})
    cfg = with_detection(base).model_copy(
        update={"llm": llm_for(fake, explanation_ttl_s=1.0), "maintenance": MaintenanceSettings(interval_s=0.5)}
    )
    with run_server(cfg) as s, s.client() as c:
        key, _ = confirmed_pattern(c)
        assert c.post(f"{ROUTE}/{key}").status_code == 200
        kv.put(s.aw.engine, KEY_PREFIX + "not-expired", {"pattern_key": "x", "expires_at": 4e9})
        assert kv.get(s.aw.engine, cache_key(key)) is not None
        wait_for(lambda: kv.get(s.aw.engine, cache_key(key)) is None, timeout=10)
        assert kv.get(s.aw.engine, KEY_PREFIX + "not-expired") is not None
