"""Hostile and careless use of today's rule suggestions, alert triage and case links: odd rule
ids in pattern keys, backend answers that are not one clean YAML block, concurrent drafts,
expired drafts, many verdicts. The LLM backend is a fake OpenAI-compatible server on
127.0.0.9 (a real HTTP server that answers what each test sets and counts what it was sent)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import insert

from agentwatch.config import LlmSettings, Settings
from agentwatch.detect.schema import alert_feedback
from tests.detect.helpers import alerts, wait_for, with_detection
from tests.detect.test_explain import make_alert_on
from tests.soc.helpers import create, make_alert
from tests.support.fake_llm import FakeLlm, fake_llm
from tests.support.server import RunningServer, open_settings, run_server

FAKE_HOST = "127.0.0.9"
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
"""
ODD_RULE_ID = "HUNT/odd:rule id"  # a rule id holding the key's separator and a slash
ODD_MARKER = "hunt-odd-marker"
ATR_RULE = f"""id: "{ODD_RULE_ID}"
title: Odd marker in a tool call
severity: high
detection:
  condition: any
  conditions:
    - field: tool_args
      operator: contains
      value: {ODD_MARKER}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with fake_llm(FAKE_HOST, "```yaml\n" + RULE + "```") as f:
        yield f


@pytest.fixture(autouse=True)
def _reset(fake: FakeLlm) -> None:
    fake.reset("```yaml\n" + RULE + "```")


def llm_for(fake: FakeLlm, **kw: Any) -> LlmSettings:
    return LlmSettings(enabled=True, base_url=fake.url, model="drafter-h", allow_private=True, timeout_s=10.0, **kw)


def settings_for(
    fake: FakeLlm, data: Path, database_url: str, *, llm: dict[str, Any] | None = None, **det: Any
) -> Settings:
    rules = data / "atr"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "odd.yaml").write_text(ATR_RULE)
    base = Settings(data_dir=data, database_url=database_url, auth={"enabled": False})
    cfg = with_detection(base, atr_rules_dirs=[rules], **det)
    return cfg.model_copy(update={"llm": llm_for(fake, **(llm or {}))})


@pytest.fixture(scope="module")
def srv(fake: FakeLlm, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(settings_for(fake, tmp_path_factory.mktemp("data"), module_database_url)) as s:
        yield s


def verdict(c: Any, alert_id: str, feedback: str, note: str = "") -> None:
    r = c.post(f"/api/v1/alerts/{alert_id}/feedback", json={"feedback": feedback, "note": note})
    assert r.status_code == 204, r.text


def suggestions(c: Any) -> dict[str, dict[str, Any]]:
    r = c.get(ROUTE)
    assert r.status_code == 200, r.text
    return {s["pattern_key"]: s for s in r.json()["suggestions"]}


@contextmanager
def isolated(srv: RunningServer) -> Iterator[Any]:
    """A client on ``srv`` whose store holds no earlier test's alerts (so none of their
    feedback) nor drafts."""
    with srv.client() as c:
        for a in alerts(c, limit=1000, type="atr,sigma,builtin,correlation")["alerts"]:
            c.delete(f"/api/v1/alerts/{a['id']}")
        for kind in ("atr", "sigma"):
            for rule in ("AW-TOOL-001", ODD_RULE_ID):
                assert c.delete(f"{ROUTE}/{kind}:{quote(rule)}:host").status_code in (204, 404)
        yield c


def confirmed_pattern(c: Any, tps: int = 3) -> str:
    """An AW-TOOL-001 alert on a host of its own with ``tps`` TP verdicts: its pattern key."""
    alert_id = make_alert_on(c, f"hunt-{uuid.uuid4().hex[:8]}")
    for _ in range(tps):
        verdict(c, alert_id, "tp", "confirmed")
    alert = c.get(f"/api/v1/alerts/{alert_id}").json()
    return f"{alert['type']}:AW-TOOL-001:host"


def odd_alert(c: Any) -> str:
    host = f"hunt-{uuid.uuid4().hex[:8]}"
    event = {
        "event_type": "agent.tool_call",
        "host": {"hostname": host},
        "data": {"tool": {"name": "run_shell", "type": "shell"}, "arguments": {"command": f"echo {ODD_MARKER}"}},
    }
    assert c.post("/api/v1/ingest", json=event).status_code in (200, 202)
    found = wait_for(lambda: alerts(c, rule_id=ODD_RULE_ID, entity=host, type="atr")["alerts"])
    return found[0]["id"]


# -- pattern keys -----------------------------------------------------------------------


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "percent-encoded"])
def test_a_rule_id_holding_colons_and_slashes_is_listed_drafted_and_dropped(
    srv: RunningServer, fake: FakeLlm, encode: bool
) -> None:
    with isolated(srv) as c:
        alert_id = odd_alert(c)
        for _ in range(3):
            verdict(c, alert_id, "tp")
        key = f"atr:{ODD_RULE_ID}:host"
        listed = suggestions(c)[key]
        assert listed["rule_id"] == ODD_RULE_ID and listed["entity_type"] == "host"
        path = f"{ROUTE}/{quote(key, safe='') if encode else key}"
        r = c.post(path)
        assert r.status_code == 200, r.text
        assert r.json()["pattern_key"] == key and r.json()["cached"] is False
        assert repr(key) in fake.got[0]["messages"][1]["content"]
        assert suggestions(c)[key]["drafted"] is True
        assert c.delete(path).status_code == 204
        assert suggestions(c)[key]["drafted"] is False


def test_a_pattern_whose_alerts_were_deleted_after_listing_is_404_and_nothing_is_asked(
    srv: RunningServer, fake: FakeLlm
) -> None:
    with isolated(srv) as c:
        key = confirmed_pattern(c)
        assert key in suggestions(c)
        for a in alerts(c, rule_id="AW-TOOL-001")["alerts"]:
            assert c.delete(f"/api/v1/alerts/{a['id']}").status_code in (200, 204)
        r = c.post(f"{ROUTE}/{key}")
        assert r.status_code == 404 and r.json()["error"]["details"]["pattern_key"] == key
        assert fake.got == []


# -- what the backend answers ---------------------------------------------------------------


def draft_of(c: Any, key: str) -> dict[str, Any]:
    r = c.post(f"{ROUTE}/{key}")
    assert r.status_code == 200, r.text
    return r.json()


def asked_id(fake: FakeLlm) -> str:
    return re.search(r"Use the id ([0-9a-f-]{36})", fake.got[-1]["messages"][0]["content"]).group(1)


@pytest.mark.parametrize(
    "answer",
    [
        'The evidence I used:\n```json\n{"tool": "run_shell"}\n```\nThe rule:\n```yaml\n' + RULE + "```\n",
        "Shell seen:\n```bash\ncurl x | bash\n```\n```yml\n" + RULE + "```",
        "```YAML\r\n" + RULE.replace("\n", "\r\n") + "```",
        "```yaml title=rule.yml\n" + RULE + "```",
    ],
    ids=["json-block-first", "bash-block-first", "crlf-upper", "info-string"],
)
def test_the_yaml_block_is_found_among_other_fenced_blocks(srv: RunningServer, fake: FakeLlm, answer: str) -> None:
    fake.answer = answer
    with isolated(srv) as c:
        doc = draft_of(c, confirmed_pattern(c))
        rule_id = asked_id(fake)
        assert doc["yaml"].replace("\r\n", "\n") == RULE.replace("{rule_id}", rule_id).strip()
        assert doc["validation"] == {"valid": True, "problems": [], "rule_ids": [rule_id]}


BOMB = "\n".join(
    ["title: bomb", "id: {rule_id}", "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]"
        for i in range(12)
    ]
    + ["logsource: {product: agentwatch, category: tool_call}", "detection: {s: {tool_args: x}, condition: s}"]
)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("```yaml\n" + BOMB + "\n```", "alias"),
        ("I cannot write a rule for this.", ""),
        ("```yaml\n```", ""),
        ("```yaml\n" + RULE.replace("{rule_id}", "not a uuid") + "```", ""),
        ("```yaml\n" + "x: " + "[" * 5000 + "]" * 5000 + "\n```", ""),
    ],
    ids=["billion-laughs", "prose", "empty-block", "bad-id", "deep-nesting"],
)
def test_answers_that_are_no_rule_are_drafts_with_problems_in_bounded_time(
    srv: RunningServer, fake: FakeLlm, answer: str, problem: str
) -> None:
    fake.answer = answer
    with isolated(srv) as c:
        key = confirmed_pattern(c)
        started = time.monotonic()
        doc = draft_of(c, key)
        assert time.monotonic() - started < 5
        assert doc["validation"]["valid"] is False
        assert doc["validation"]["problems"][0]["message"]
        assert problem in doc["validation"]["problems"][0]["message"].lower()


def test_a_huge_answer_is_cut_to_the_yaml_bound(srv: RunningServer, fake: FakeLlm) -> None:
    fake.answer = "```yaml\n" + RULE + "# " + "é" * 300_000 + "\n```"  # about 600 KB: under the 1 MiB answer bound
    with isolated(srv) as c:
        doc = draft_of(c, confirmed_pattern(c))
        assert len(doc["yaml"]) <= 64 * 1024
        assert doc["yaml"].startswith("title: Download piped")


def test_a_draft_reusing_an_existing_rule_id_is_reported_as_a_conflict(srv: RunningServer, fake: FakeLlm) -> None:
    with isolated(srv) as c:
        existing = str(uuid.uuid4())
        up = c.post("/api/v1/sigma/rules", json={"yaml": RULE.replace("{rule_id}", existing)})
        assert up.status_code == 201, up.text
        fake.answer = "```yaml\n" + RULE.replace("{rule_id}", existing) + "```"
        try:
            doc = draft_of(c, confirmed_pattern(c))
            assert doc["validation"]["valid"] is False
            assert existing in doc["validation"]["problems"][0]["message"]
        finally:
            c.delete(f"/api/v1/sigma/rules/{existing}")


# -- concurrency and expiry -----------------------------------------------------------------


def test_concurrent_drafts_of_one_pattern_ask_the_backend_once(srv: RunningServer, fake: FakeLlm) -> None:
    with isolated(srv) as c:
        key = confirmed_pattern(c)
    fake.delay_s = 0.5
    answers: list[httpx.Response] = []

    def post() -> None:
        with srv.client() as own:
            answers.append(own.post(f"{ROUTE}/{key}"))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200] * 6
    assert len(fake.got) == 1
    assert sorted(r.json()["cached"] for r in answers) == [False] + [True] * 5
    assert len({r.json()["yaml"] for r in answers}) == 1


def test_an_expired_draft_is_drafted_anew(fake: FakeLlm, database_url: str, tmp_path: Path) -> None:
    cfg = settings_for(fake, tmp_path, database_url, llm={"explanation_ttl_s": 1.0})
    with run_server(cfg) as s, s.client() as c:
        key = confirmed_pattern(c)
        first = draft_of(c, key)
        assert draft_of(c, key)["cached"] is True
        time.sleep(1.2)
        assert suggestions(c)[key]["drafted"] is False
        again = draft_of(c, key)
        assert again["cached"] is False and again["created_at"] != first["created_at"]
        assert len(fake.got) == 2
        assert c.delete(f"{ROUTE}/{key}").status_code == 204


# -- many verdicts ---------------------------------------------------------------------


def test_listing_reads_only_the_newest_ten_thousand_verdicts_in_bounded_time(
    fake: FakeLlm, database_url: str, tmp_path: Path
) -> None:
    cfg = settings_for(fake, tmp_path, database_url)
    with run_server(cfg) as s, s.client() as c:
        alert_id = make_alert_on(c, f"hunt-{uuid.uuid4().hex[:8]}")
        kind = c.get(f"/api/v1/alerts/{alert_id}").json()["type"]
        key = f"{kind}:AW-TOOL-001:host"
        now = time.time()
        # 4,000 old TPs, then 10,000 newer FPs: only the FPs are read, so the pattern is not listed
        rows = [
            {"id": str(uuid.uuid4()), "alert_id": alert_id, "feedback": "tp" if i < 4000 else "fp",
             "note": "", "origin": "api", "principal": "", "created_at": now - 20_000 + i}
            for i in range(14_000)
        ]  # fmt: skip
        with s.aw.engine.begin() as conn:  # the server's own store: 14,000 POSTs would take minutes
            conn.execute(insert(alert_feedback), rows)
        started = time.monotonic()
        r = c.get(ROUTE)
        took = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.json()["feedback_read"] == 10_000
        assert key not in {p["pattern_key"] for p in r.json()["suggestions"]}
        assert took < 3, f"listing took {took:.2f} s"
        verdict(c, alert_id, "tp")  # the newest: read, but 1 TP against 9,999 FPs
        assert key not in suggestions(c)


# -- alert triage: the unassigned filter and composed assignees ----------------------------------


@pytest.fixture(scope="module")
def open_srv(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[RunningServer]:
    with run_server(open_settings(tmp_path_factory.mktemp("open"), module_database_url)) as s:
        yield s


def listed_ids(c: Any, **params: Any) -> set[str]:
    r = c.get("/api/v1/alerts", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return {a["id"] for a in r.json()["alerts"]}


def test_unassigned_spellings_and_composed_assignees(open_srv: RunningServer) -> None:
    engine = open_srv.aw.engine
    free, decomposed, composed = make_alert(engine), make_alert(engine), make_alert(engine)
    with open_srv.client() as c:
        assert c.patch(f"/api/v1/alerts/{decomposed}", json={"assignee": "Jose\u0301 Nin\u0303o"}).status_code == 200
        assert c.patch(f"/api/v1/alerts/{composed}", json={"assignee": "Jos\u00e9 Ni\u00f1o"}).status_code == 200
        assert c.get(f"/api/v1/alerts/{decomposed}").json()["assignee"] == "Jos\u00e9 Ni\u00f1o"
        for spelling in ("Jose\u0301 Nin\u0303o", "Jos\u00e9 Ni\u00f1o"):
            found = listed_ids(c, assignee=spelling)
            assert {decomposed, composed} <= found and free not in found
        for yes in ("true", "1"):
            found = listed_ids(c, unassigned=yes)
            assert free in found and not {decomposed, composed} & found
        for no in ("false", "0"):
            assert {free, decomposed, composed} <= listed_ids(c, unassigned=no)
        for bad in ("maybe", "2", ""):
            r = c.get("/api/v1/alerts", params={"unassigned": bad})
            assert r.status_code == 400 and "unassigned" in r.json()["error"]["message"], r.text
        r = c.get("/api/v1/alerts", params={"unassigned": "false", "assignee": "Jos\u00e9"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("unassigned:")


def test_an_assignee_too_long_once_composed_is_400_naming_the_field_and_the_rule(open_srv: RunningServer) -> None:
    alert_id = make_alert(open_srv.aw.engine)
    with open_srv.client() as c:
        r = c.patch(f"/api/v1/alerts/{alert_id}", json={"assignee": "\u0344" * 100})  # composes to 200
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith("assignee:") and "at most 128 characters" in message and "NFC" in message
        assert c.get(f"/api/v1/alerts/{alert_id}").json()["assignee"] is None


# -- cases: deleted alerts ------------------------------------------------------------------


def test_concurrent_deletes_of_alerts_sharing_cases_all_succeed_and_each_is_recorded_once(
    open_srv: RunningServer,
) -> None:
    engine = open_srv.aw.engine
    ids = [make_alert(engine) for _ in range(12)]
    with open_srv.client() as c:
        # every case links every alert, in an order of its own
        cases = [create(c, alert_ids=ids[k:] + ids[:k])["id"] for k in range(0, 12, 3)]
    answers: list[int] = []

    def delete(alert_id: str) -> None:
        with open_srv.client() as own:
            answers.append(own.delete(f"/api/v1/alerts/{alert_id}").status_code)

    threads = [threading.Thread(target=delete, args=(a,)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [204] * len(ids)
    with open_srv.client() as c:
        for case_id in cases:
            doc = c.get(f"/api/v1/cases/{case_id}").json()
            assert doc["alert_ids"] == []
            named = [
                line
                for e in doc["timeline"]
                if e["author"] == "system:alert-deletion"
                for line in e["description"].splitlines()
            ]
            assert sorted(named) == sorted(ids)


def test_deleting_an_alert_linked_to_many_cases_is_one_quick_request(open_srv: RunningServer) -> None:
    engine = open_srv.aw.engine
    alert_id = make_alert(engine)
    with open_srv.client() as c:
        cases = [create(c, alert_ids=[alert_id])["id"] for _ in range(150)]
        started = time.monotonic()
        assert c.delete(f"/api/v1/alerts/{alert_id}").status_code == 204
        assert time.monotonic() - started < 3
        found = c.get("/api/v1/cases", params={"alert_id": alert_id, "limit": 1000}).json()
        assert found["meta"]["total"] == 0
        doc = c.get(f"/api/v1/cases/{cases[77]}").json()
        assert doc["timeline"][-1]["title"] == f"Alert {alert_id} removed: the alert was deleted"


def test_with_min_tp_one_a_single_true_positive_is_a_pattern_until_a_false_one_ties_it(
    fake: FakeLlm, database_url: str, tmp_path: Path
) -> None:
    with run_server(settings_for(fake, tmp_path, database_url, rule_suggestion_min_tp=1)) as s, s.client() as c:
        alert_id = odd_alert(c)
        key = f"atr:{ODD_RULE_ID}:host"
        assert key not in suggestions(c)  # no verdict yet
        verdict(c, alert_id, "tp")
        listed = c.get(ROUTE).json()
        assert listed["min_tp"] == 1 and key in {p["pattern_key"] for p in listed["suggestions"]}
        verdict(c, alert_id, "fp")
        assert key not in suggestions(c)
        assert c.post(f"{ROUTE}/{quote(key)}").status_code == 404
        assert fake.got == []


@pytest.mark.parametrize("limit", ["0", "501", "ten", ""])
def test_a_bad_listing_limit_is_400_naming_it(srv: RunningServer, limit: str) -> None:
    with srv.client() as c:
        r = c.get(ROUTE, params={"limit": limit})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("limit"), r.text
