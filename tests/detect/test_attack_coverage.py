"""GET /api/v1/attack/coverage: the ATT&CK matrix of the enabled rules and the alerts of a window,
on SQLite and PostgreSQL, through a real server."""

from __future__ import annotations

import itertools
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from tests.conftest import SHARED
from tests.detect.helpers import with_detection
from tests.soc.helpers import auth_server
from tests.support.server import run_server

LINUX_RULES = SHARED / "data" / "sigmahq" / "rules" / "linux" / "process_creation"
# tags: privilege-escalation, execution, persistence, t1053.002
AT_RULE = "d2d642d7-b393-43fe-bae4-e81ed5915c4b"
# tags: execution, t1059
AWK_RULE = "8c1a5675-cb85-452f-a298-b01b22a51856"
DAY = 86400
ORDER = [
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "stealth",
    "defense-impairment",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
]
_serial = itertools.count()


@pytest.fixture(scope="module")
def srv(module_database_url, tmp_path_factory):
    """Detection with the rule pack, the built-in rules and two SigmaHQ Linux rules."""
    rules = tmp_path_factory.mktemp("sigma")
    for name in ("proc_creation_lnx_at_command.yml", "proc_creation_lnx_awk_shell_spawn.yml"):
        shutil.copy(LINUX_RULES / name, rules / name)
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base, sigma_rules_dirs=[rules])) as s:
        yield s


def coverage(client: Any, **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/attack/coverage", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def tactic(doc: dict[str, Any], shortname: str) -> dict[str, Any]:
    (row,) = [t for t in doc["tactics"] if t["shortname"] == shortname]
    return row


def technique(row: dict[str, Any], tid: str) -> dict[str, Any] | None:
    found = [t for t in row["techniques"] if t["id"] == tid]
    return found[0] if found else None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def store_alert(engine: Any, tags: list[str], ts: float) -> None:
    """A real stored alert (through the recorder), each with its own rule and dedup key."""
    n = next(_serial)
    event = Event(body={}, event_id=f"cov-e{n}", event_type="process.exec", ts=ts, received_at=ts)
    finding = Finding("test", f"COV-RULE-{n}", f"Coverage {n}", 5, [event], alert_type="sigma", tags=tags)
    finding.dedup_key = f"cov-{n}"
    ((_, is_new),) = store_findings(engine, [finding], 300)
    assert is_new


def test_enabled_rules_fill_the_matrix_in_tactic_order(srv):
    with srv.client() as c:
        doc = coverage(c)
        catalogue = c.get("/api/v1/sigma/rules", params={"enabled": "true", "limit": 1000}).json()["rules"]
    assert [t["shortname"] for t in doc["tactics"]] == ORDER
    execution = tactic(doc, "execution")
    assert (execution["id"], execution["name"]) == ("TA0002", "Execution")
    assert tactic(doc, "stealth")["id"] == "TA0005" and tactic(doc, "defense-impairment")["id"] == "TA0112"
    assert tactic(doc, "command-and-control")["id"] == "TA0011" and tactic(doc, "impact")["id"] == "TA0040"

    # the SigmaHQ "at" rule: one sub-technique, grouped under its parent, in each of its three tactics
    for shortname in ("execution", "persistence", "privilege-escalation"):
        t1053 = technique(tactic(doc, shortname), "T1053")
        assert t1053 is not None, shortname
        assert (t1053["rules"], t1053["rule_ids"], t1053["alerts"]) == (1, [AT_RULE], 0)
        assert t1053["subtechniques"] == [{"id": "T1053.002", "rules": 1, "alerts": 0, "rule_ids": [AT_RULE]}]
    assert technique(tactic(doc, "discovery"), "T1053") is None

    # T1059 in Execution: the awk rule (the parent itself) and AW-TOOL-001 (T1059.004)
    t1059 = technique(execution, "T1059")
    assert t1059["rules"] == 2 and sorted(t1059["rule_ids"]) == sorted([AWK_RULE, "AW-TOOL-001"])
    assert [s["id"] for s in t1059["subtechniques"]] == ["T1059.004"]
    assert t1059["subtechniques"][0]["rule_ids"] == ["AW-TOOL-001"]
    # AW-PI-001 tags T1059 with initial_access (underscore form): it is counted there, not in Execution
    assert "AW-PI-001" in technique(tactic(doc, "initial-access"), "T1059")["rule_ids"]
    # the retired Defense Evasion tag of the pack keeps its own row; the built-in drift rule is Persistence
    assert technique(tactic(doc, "defense-evasion"), "T1195")["rule_ids"] == ["AW-MCP-001"]
    assert "AW-BUILTIN-TOOL-DRIFT" in technique(tactic(doc, "persistence"), "T1195")["rule_ids"]

    tagged = [r for r in catalogue if any(str(t).lower().startswith("attack.") for t in r["tags"])]
    assert doc["totals"]["rules_with_attack_tags"] == len(tagged) > 2
    assert doc["totals"]["rules"] == len(catalogue)


def test_alerts_in_the_window_are_counted_and_older_ones_are_not(srv):
    now = time.time()
    tags = ["attack.lateral-movement", "attack.t1021.004"]
    store_alert(srv.aw.engine, tags, now - 3600)
    store_alert(srv.aw.engine, tags, now - 40 * DAY)
    store_alert(srv.aw.engine, ["attack.T1499"], now - 7200)  # a technique without a tactic, in capitals
    with srv.client() as c:
        doc = coverage(c)
        t1021 = technique(tactic(doc, "lateral-movement"), "T1021")
        assert (t1021["alerts"], t1021["rules"], t1021["rule_ids"]) == (1, 0, [])
        assert t1021["subtechniques"] == [{"id": "T1021.004", "rules": 0, "alerts": 1, "rule_ids": []}]
        assert tactic(doc, "lateral-movement")["alerts"] == 1
        unmapped = technique(doc["unmapped"], "T1499")
        assert unmapped is not None and unmapped["alerts"] == 1 and unmapped["subtechniques"] == []

        wide = coverage(c, since=iso(now - 41 * DAY))
        assert technique(tactic(wide, "lateral-movement"), "T1021")["alerts"] == 2
        old = coverage(c, since=iso(now - 45 * DAY), until=iso(now - 35 * DAY))
        assert technique(tactic(old, "lateral-movement"), "T1021")["alerts"] == 1
        assert technique(old["unmapped"], "T1499") is None
        assert wide["totals"]["alerts"] == doc["totals"]["alerts"] + 1
        assert wide["totals"]["alerts_truncated"] is False


def test_default_window_is_the_last_30_days(srv):
    with srv.client() as c:
        before = time.time()
        doc = coverage(c)
        after = time.time()
        since = datetime.fromisoformat(doc["window"]["since"]).timestamp()
        until = datetime.fromisoformat(doc["window"]["until"]).timestamp()
        assert before - 1 <= until <= after + 1
        assert until - since == pytest.approx(30 * DAY, abs=0.01)
        only_until = coverage(c, until="2026-01-31T00:00:00Z")["window"]
        assert only_until == {"since": "2026-01-01T00:00:00Z", "until": "2026-01-31T00:00:00Z"}
        only_since = coverage(c, since="2026-01-01T00:00:00Z")["window"]
        assert only_since["since"] == "2026-01-01T00:00:00Z"
        assert before - 1 <= datetime.fromisoformat(only_since["until"]).timestamp() <= time.time() + 1
        # 30 days before the first representable day: the window starts at that day, not in year 0
        earliest = coverage(c, until="0001-01-05T00:00:00Z")["window"]
        assert earliest == {"since": "0001-01-01T00:00:00Z", "until": "0001-01-05T00:00:00Z"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2" * 65}, "since"),
        ({"sinse": "2026-01-01T00:00:00Z"}, "sinse"),
        ({"limit": "10"}, "limit"),
    ],
)
def test_bad_parameters_answer_400_naming_the_field(srv, params, field):
    with srv.client() as c:
        r = c.get("/api/v1/attack/coverage", params=params)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and error["message"].startswith(f"{field}:"), error


def test_a_disabled_rule_no_longer_counts_as_coverage(srv):
    with srv.client() as c:
        before = coverage(c)
        assert technique(tactic(before, "execution"), "T1053") is not None
        assert c.patch(f"/api/v1/sigma/rules/{AT_RULE}", json={"enabled": False}).status_code == 200
        try:
            after = coverage(c)
            for shortname in ("execution", "persistence", "privilege-escalation"):
                assert technique(tactic(after, shortname), "T1053") is None, shortname
            assert after["totals"]["rules_with_attack_tags"] == before["totals"]["rules_with_attack_tags"] - 1
            assert after["totals"]["techniques_covered"] == before["totals"]["techniques_covered"] - 1
        finally:
            assert c.patch(f"/api/v1/sigma/rules/{AT_RULE}", json={"enabled": True}).status_code == 200
        assert technique(tactic(coverage(c), "execution"), "T1053")["rule_ids"] == [AT_RULE]


def test_needs_alerts_and_rules_read_and_is_limited_to_10_a_minute_per_client(module_database_url, tmp_path: Path):
    with auth_server(module_database_url, tmp_path) as s:
        _, reader = s.key("alerts:read", "rules:read")
        _, other = s.key("alerts:read", "rules:read")
        _, rules_only = s.key("rules:read", "events:read")
        _, alerts_only = s.key("alerts:read")
        c = s.client
        denied = c.get("/api/v1/attack/coverage", headers=rules_only)
        assert denied.status_code == 403 and "alerts:read" in denied.json()["error"]["message"]
        denied = c.get("/api/v1/attack/coverage", headers=alerts_only)
        assert denied.status_code == 403 and "rules:read" in denied.json()["error"]["message"]
        assert c.get("/api/v1/attack/coverage").status_code == 401
        for i in range(10):
            ok = c.get("/api/v1/attack/coverage", headers=reader)
            assert ok.status_code == 200, i
            # the headers tell the coverage budget, the tighter one, not the general one (once each)
            assert ok.headers.get_list("x-ratelimit-limit") == ["10"], ok.headers
            assert ok.headers.get_list("x-ratelimit-remaining") == [str(9 - i)], ok.headers
        limited = c.get("/api/v1/attack/coverage", headers=reader)
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert "10 requests per 60s" in limited.json()["error"]["message"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers.get_list("x-ratelimit-limit") == ["10"], limited.headers
        assert limited.headers.get_list("x-ratelimit-remaining") == ["0"], limited.headers
        assert 0 <= int(limited.headers["x-ratelimit-reset"]) - time.time() <= 61
        # the budget is per client and per route: another key, and the same key elsewhere, still pass
        assert c.get("/api/v1/attack/coverage", headers=other).status_code == 200
        assert c.get("/api/v1/alerts", headers=reader).status_code == 200
