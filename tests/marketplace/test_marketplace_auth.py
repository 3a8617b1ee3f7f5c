"""The marketplace asks for its permissions: reading ``rules:read``; installing a detection
``rules:write``; installing a playbook ``playbooks:write`` and the permission of each of its steps
(a playbook acts later on its own). Every install attempt is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.soc.helpers import AuthServer, auth_server

ITEMS = "/api/v1/marketplace/items"
DETECTION = "agent-host-resolves-drop-service"
PLAYBOOK = "contain-agent-exfiltration"  # steps need alerts:write and cases:write


@pytest.fixture(scope="module")
def authed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as a:
        yield a


def test_every_route_needs_a_credential(authed: AuthServer) -> None:
    c = authed.client
    assert c.get(ITEMS).status_code == 401
    assert c.get(f"{ITEMS}/{DETECTION}").status_code == 401
    assert c.post(f"{ITEMS}/{DETECTION}:install").status_code == 401
    assert c.get("/marketplace/index.json").status_code == 401


def test_a_viewer_reads_but_cannot_install(authed: AuthServer) -> None:
    c = authed.client
    _, viewer = authed.key("rules:read")
    assert c.get(ITEMS, headers=viewer).status_code == 200
    assert c.get(f"{ITEMS}/{DETECTION}", headers=viewer).status_code == 200
    assert c.get("/marketplace/index.json", headers=viewer).status_code == 200
    r = c.post(f"{ITEMS}/{DETECTION}:install", headers=viewer)
    assert r.status_code == 403 and "rules:write" in r.json()["error"]["message"]
    r = c.post(f"{ITEMS}/{PLAYBOOK}:install", headers=viewer)
    assert r.status_code == 403 and "playbooks:write" in r.json()["error"]["message"]
    _, writer_only = authed.key("rules:write")
    assert c.post(f"{ITEMS}/{DETECTION}:install", headers=writer_only).status_code == 403  # needs rules:read too
    assert c.get(f"{ITEMS}/{DETECTION}", headers=viewer).json()["installed"] is False


def test_rules_write_installs_a_detection_but_not_a_playbook(authed: AuthServer) -> None:
    c = authed.client
    _, author = authed.key("rules:read", "rules:write")
    r = c.post(f"{ITEMS}/{DETECTION}:install", headers=author)
    assert r.status_code == 201, r.text
    assert r.json()["install"]["installed_by"]
    r = c.post(f"{ITEMS}/{PLAYBOOK}:install", headers=author)
    assert r.status_code == 403 and "playbooks:write" in r.json()["error"]["message"]


def test_an_installer_lacking_a_step_permission_gets_403(authed: AuthServer) -> None:
    c = authed.client
    _, partial = authed.key("rules:read", "playbooks:write", "alerts:write")  # no cases:write
    r = c.post(f"{ITEMS}/{PLAYBOOK}:install", headers=partial)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == (
        "steps[1].action: 'add_alert_to_case' needs permission 'cases:write', which the caller does not hold"
    )
    assert c.get("/api/v1/playbooks", headers=authed.admin).json()["meta"]["total"] == 0
    assert c.get(f"{ITEMS}/{PLAYBOOK}", headers=partial).json()["installed"] is False
    _, full = authed.key("rules:read", "playbooks:write", "alerts:write", "cases:write")
    r = c.post(f"{ITEMS}/{PLAYBOOK}:install", headers=full)
    assert r.status_code == 201, r.text


def test_every_install_attempt_is_audited(authed: AuthServer) -> None:
    c = authed.client
    _, viewer = authed.key("rules:read")
    c.post(f"{ITEMS}/no-such-item:install", headers=authed.admin)
    c.post(f"{ITEMS}/llm-output-markdown-image-beacon:install", headers=viewer)
    made = c.post(f"{ITEMS}/llm-output-markdown-image-beacon:install", headers=authed.admin)
    assert made.status_code == 201, made.text
    r = c.get("/api/v1/audit", params={"limit": 1000}, headers=authed.admin)
    assert r.status_code == 200, r.text
    rows = [e for e in r.json()["entries"] if e["action"] == "POST /api/v1/marketplace/items/{slug}:install"]
    by = {(e["target"], e["status"]) for e in rows}
    assert (f"{ITEMS}/no-such-item:install", 404) in by
    assert (f"{ITEMS}/llm-output-markdown-image-beacon:install", 403) in by
    ok = next(e for e in rows if e["status"] == 201 and e["target"].endswith("beacon:install"))
    assert ok["details"] == {
        "slug": "llm-output-markdown-image-beacon",
        "version": "1.0.0",
        "kind": "detection",
        "installed": "c3a9d5e7-2f18-4b6c-a0e4-5d9b8c7a6f23",
    }
    assert c.get("/api/v1/audit/verify", headers=authed.admin).json()["ok"] is True


def _installed(authed: AuthServer, slug: str) -> None:
    made = authed.client.post(f"{ITEMS}/{slug}:install", headers=authed.admin)
    assert made.status_code in (201, 409), made.text  # 409: an earlier test installed it


def test_uninstalling_needs_the_permission_installing_that_kind_does_and_is_audited(authed: AuthServer) -> None:
    c = authed.client
    _installed(authed, DETECTION)
    _installed(authed, PLAYBOOK)
    assert c.post(f"{ITEMS}/{DETECTION}:uninstall").status_code == 401
    _, viewer = authed.key("rules:read")
    r = c.post(f"{ITEMS}/{DETECTION}:uninstall", headers=viewer)
    assert r.status_code == 403 and r.json()["error"]["message"] == (
        "kind: uninstalling a detection needs permission 'rules:write', which the caller does not hold"
    )
    r = c.post(f"{ITEMS}/{PLAYBOOK}:uninstall", headers=viewer)
    assert r.status_code == 403 and "'playbooks:write'" in r.json()["error"]["message"], r.text
    _, author = authed.key("rules:read", "rules:write")
    assert c.post(f"{ITEMS}/{PLAYBOOK}:uninstall", headers=author).status_code == 403
    assert c.get(f"{ITEMS}/{PLAYBOOK}", headers=viewer).json()["installed"] is True
    rule_id = c.get(f"{ITEMS}/{DETECTION}", headers=viewer).json()["install"]["resource_id"]
    r = c.post(f"{ITEMS}/{DETECTION}:uninstall", headers=author)
    assert r.status_code == 200, r.text
    _, keeper = authed.key("rules:read", "playbooks:write")
    r = c.post(f"{ITEMS}/{PLAYBOOK}:uninstall", headers=keeper)
    assert r.status_code == 200, r.text
    pid = r.json()["removed"][0]
    assert c.get(f"{ITEMS}/{PLAYBOOK}", headers=viewer).json()["installed"] is False
    rows = c.get("/api/v1/audit", params={"limit": 1000}, headers=authed.admin).json()["entries"]
    rows = [e for e in rows if e["action"] == "POST /api/v1/marketplace/items/{slug}:uninstall"]
    by = {(e["target"], e["status"]) for e in rows}
    assert (f"{ITEMS}/{PLAYBOOK}:uninstall", 403) in by
    details = {e["target"]: e["details"] for e in rows if e["status"] == 200}
    assert details[f"{ITEMS}/{DETECTION}:uninstall"] == {
        "slug": DETECTION,
        "version": "1.0.0",
        "kind": "detection",
        "uninstalled": [rule_id],
    }
    assert details[f"{ITEMS}/{PLAYBOOK}:uninstall"]["uninstalled"] == [pid]
