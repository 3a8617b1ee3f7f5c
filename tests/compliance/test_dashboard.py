"""The per-framework dashboard on a real server, on SQLite and PostgreSQL: statuses worked out
by hand from the settings, a disabled rule turning a control into a gap, uploaded evidence
turning a gap into ``evidence``, and alert counts over the window."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.config import Settings
from tests.compliance.helpers import BASE, EVIDENCE, control_row, link, record_alert, statuses
from tests.detect.helpers import with_detection
from tests.support.server import RunningServer, run_server

OWASP = "owasp-llm-2025"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # auth off, the pack and built-in rules on, the bundled ATR set off (slow to load), guard in
    # monitor mode and redaction "safe" (the defaults), no approved models, no alert outputs
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base)) as s:
        yield s


def test_owasp_statuses_follow_the_settings_and_rules(srv: RunningServer) -> None:
    with srv.client() as c:
        doc = c.get(f"{BASE}/dashboard/{OWASP}").json()
    got = {row["id"]: row["status"] for row in doc["controls"]}
    # LLM03 needs an approved-model list (none configured); LLM09 maps to nothing automatic;
    # LLM10 needs rate limits, which only apply with authentication on
    assert got == {
        "LLM01": "covered",
        "LLM02": "covered",
        "LLM03": "gap",
        "LLM04": "covered",
        "LLM05": "covered",
        "LLM06": "covered",
        "LLM07": "covered",
        "LLM08": "covered",
        "LLM09": "gap",
        "LLM10": "gap",
    }
    assert doc["totals"] == {"controls": 10, "covered": 7, "evidence": 0, "gap": 3, "percent_addressed": 70.0}
    assert doc["framework"]["id"] == OWASP
    llm01 = doc["controls"][0]
    # the three pack rules by id; the ATR set carrying the tag is not loaded here
    assert llm01["automatic"]["rules"]["enabled_ids"] == ["AW-PI-001", "AW-PI-002", "AW-PI-003"]
    assert llm01["automatic"]["rules"]["mapped"] == 3
    assert llm01["automatic"]["capabilities"] == [
        {"name": "gateway_guard", "on": True, "reason": "capture.guard.mode is monitor"}
    ]
    llm03 = doc["controls"][2]
    assert "capability model_allowlist: off (0 approved model(s) or provider(s) configured)" in llm03["reasons"]
    assert doc["controls"][8]["reasons"] == ["no automatic evidence maps to this control", "no uploaded evidence"]


def test_nist_with_auth_off_governance_is_a_gap(srv: RunningServer) -> None:
    with srv.client() as c:
        # GOVERN needs auth; MEASURE: detection and ueba are on; MANAGE needs an alert output
        assert statuses(c, "nist-ai-rmf") == {"GOVERN": "gap", "MAP": "gap", "MEASURE": "covered", "MANAGE": "gap"}


def test_disabling_the_mapped_rule_makes_a_gap_and_an_upload_makes_evidence(srv: RunningServer) -> None:
    with srv.client() as c:
        # LLM08 maps only to AW-PI-002; LLM04 also to the data-poisoning tag, which no loaded rule carries
        assert c.post("/api/v1/rules/AW-PI-002/disable").status_code == 200
        try:
            got = statuses(c, OWASP)
            assert (got["LLM04"], got["LLM08"], got["LLM01"]) == ("gap", "gap", "covered")
            row = control_row(c, OWASP, "LLM08")
            assert row["automatic"]["rules"]["disabled_ids"] == ["AW-PI-002"]
            assert row["reasons"][0] == "rules: 0 of 1 mapped rule(s) loaded and enabled (at least 1 needed)"

            assert c.post(EVIDENCE, json=link("LLM08", title="Vector store access review")).status_code == 201
            got = statuses(c, OWASP)
            assert (got["LLM04"], got["LLM08"]) == ("gap", "evidence")
            row = control_row(c, OWASP, "LLM08")
            assert row["uploaded_evidence"] == 1 and row["reasons"][-1] == "1 uploaded evidence item(s)"
            totals = c.get(f"{BASE}/dashboard/{OWASP}").json()["totals"]
            assert totals == {"controls": 10, "covered": 5, "evidence": 1, "gap": 4, "percent_addressed": 60.0}
        finally:
            assert c.post("/api/v1/rules/AW-PI-002/enable").status_code == 200
        got = statuses(c, OWASP)
        assert (got["LLM04"], got["LLM08"]) == ("covered", "covered")  # automatic evidence wins again


def test_alerts_are_counted_by_type_in_the_window(srv: RunningServer) -> None:
    with srv.client() as c:
        before = control_row(c, OWASP, "LLM07")["automatic"]["alerts"]
        assert (before["types"], before["window_days"], before["min"]) == (["atr", "builtin"], 30, 0)
        record_alert(srv.aw.engine, "atr")  # counted
        record_alert(srv.aw.engine, "builtin", age_s=10 * 86_400)  # ten days old: in 30 days, not in 7
        record_alert(srv.aw.engine, "ueba")  # another type
        record_alert(srv.aw.engine, "atr", age_s=40 * 86_400)  # outside the 30 days
        after = control_row(c, OWASP, "LLM07")["automatic"]["alerts"]
        assert after["count"] == before["count"] + 2
        week_before = before["count"]  # nothing older than a minute was stored before this test
        week = control_row(c, OWASP, "LLM07", window_days=7)["automatic"]["alerts"]
        assert (week["window_days"], week["count"]) == (7, week_before + 1)
        assert control_row(c, OWASP, "LLM07")["status"] == "covered"  # alert counts are information only


def test_unknown_framework_and_bad_window(srv: RunningServer) -> None:
    with srv.client() as c:
        r = c.get(f"{BASE}/dashboard/iso-42001")
        assert r.status_code == 404 and r.json()["error"]["details"] == {"framework": "iso-42001"}
        r = c.get(f"{BASE}/dashboard/{OWASP}", params={"window_days": 0})
        assert r.status_code == 400 and "window_days" in r.json()["error"]["message"]
        r = c.get(f"{BASE}/dashboard/{OWASP}", params={"windowdays": 7})
        assert r.status_code == 400 and "windowdays" in r.json()["error"]["message"]


def test_frameworks_and_controls_paged(srv: RunningServer) -> None:
    with srv.client() as c:
        fws = c.get(f"{BASE}/frameworks").json()["frameworks"]
        assert [(f["id"], f["controls"]) for f in fws] == [("mitre-atlas", 16), ("nist-ai-rmf", 4), (OWASP, 10)]
        assert c.get(f"{BASE}/controls").json()["total"] == 30
        seen: list[str] = []
        params: dict[str, object] = {"framework": OWASP, "limit": 4}
        sizes = []
        while True:
            page = c.get(f"{BASE}/controls", params=params).json()
            assert page["total"] == 10
            sizes.append(len(page["controls"]))
            seen += [ctl["id"] for ctl in page["controls"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert sizes == [4, 4, 2]
        assert seen == [f"LLM{n:02d}" for n in range(1, 11)]
        first = c.get(f"{BASE}/controls", params={"framework": "nist-ai-rmf", "limit": 1}).json()["controls"][0]
        assert first == {
            "framework": "nist-ai-rmf",
            "id": "GOVERN",
            "title": "Govern",
            "description": "Accountability, policies and access for AI systems are set and recorded.",
            "automatic": {"rules": None, "capabilities": ["auth", "audit_log"], "alerts": None},
        }
        assert c.get(f"{BASE}/controls", params={"framework": "nope"}).status_code == 404
        r = c.get(f"{BASE}/controls", params={"cursor": "garbage"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("cursor:")
        r = c.get(f"{BASE}/controls", params={"framework": "Bad Id"})
        assert r.status_code == 400 and "framework" in r.json()["error"]["message"]


def test_a_live_honeytoken_and_a_loaded_indicator_turn_capabilities_on(srv: RunningServer) -> None:
    atlas = "mitre-atlas"
    with srv.client() as c:
        # credential access: AW-TOOL-002 (enabled) and the honeytokens capability (no token yet);
        # command and control: the intel capability alone (no indicator yet)
        before = statuses(c, atlas)
        assert (before["AML.TA0013"], before["AML.TA0014"]) == ("gap", "gap")
        row = control_row(c, atlas, "AML.TA0013")
        assert "capability honeytokens: off (0 active honeytoken(s))" in row["reasons"]
        made = c.post("/api/v1/honeytokens", json={"name": "deploy key bait", "kind": "api_key"})
        assert made.status_code == 201, made.text
        added = c.post("/api/v1/intel/iocs", json={"iocs": [{"type": "domain", "value": "c2.example"}]})
        assert added.status_code == 200, added.text
        after = statuses(c, atlas)
        assert (after["AML.TA0013"], after["AML.TA0014"]) == ("covered", "covered")
        # revoked, the token no longer counts
        assert c.delete(f"/api/v1/honeytokens/{made.json()['id']}").status_code == 204
        assert statuses(c, atlas)["AML.TA0013"] == "gap"


def test_rules_are_mapped_by_id_and_by_tag_and_the_tags_below_it(srv: RunningServer) -> None:
    with srv.client() as c:
        # initial access: ids AW-PI-001/003; attack.initial_access on AW-PI-001/002; atlas.aml.t0051
        # covers atlas.aml.t0051.000 (AW-PI-003) and .001 (AW-PI-001/002 and AW-MCP-001)
        rules = control_row(c, "mitre-atlas", "AML.TA0004")["automatic"]["rules"]
        assert rules["enabled_ids"] == ["AW-MCP-001", "AW-PI-001", "AW-PI-002", "AW-PI-003"]
        # exfiltration: five ids; attack.exfiltration adds AW-PII-001 and the unapproved-model built-in
        rules = control_row(c, "mitre-atlas", "AML.TA0010")["automatic"]["rules"]
        assert rules["enabled_ids"] == [
            "AW-BUILTIN-EXFIL",
            "AW-BUILTIN-UNAPPROVED-MODEL",
            "AW-PII-001",
            "AW-SEC-001",
            "AW-SEC-002",
            "AW-SEC-003",
            "AW-SEC-004",
        ]
        assert (rules["mapped"], rules["not_loaded_ids"], rules["disabled_ids"]) == (7, [], [])
