"""Which account an OIDC sign-in enters, and with which role, on SQLite and PostgreSQL:
``email_verified`` as a boolean or the string "true"; the groups mapping applied at every
sign-in (promotion and demotion, admin roles left alone); and ``sso.link_existing_admins``
guarding local admin accounts from a provider that can assert any address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.sso.fake_idp import FakeIdp, fake_idp
from tests.sso.helpers import PASSWORD, audit, oidc_settings, sign_in, sso_server
from tests.support.server import RunningServer
from tests.support.services import database_for

GROUPS = {"soc-analysts": "analyst", "ghosts": "ghost-role"}  # ghost-role: never created
NOT_VERIFIED = "email_verified: the provider has not verified this e-mail address"
LINK_REFUSED = "sso.link_existing_admins: the account with this e-mail holds an admin role and was not created"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with fake_idp() as fake:
        yield fake


def _server(idp: FakeIdp, url: str, factory: pytest.TempPathFactory, **sso: Any) -> Iterator[RunningServer]:
    settings = oidc_settings(idp, auto_provision=True, group_roles=GROUPS, **sso)
    with sso_server(url, factory.mktemp("data"), settings) as s:
        s.aw.auth.users.create("root@example.com", PASSWORD, "admin")  # the local administrator
        yield s


@pytest.fixture(scope="module")
def server(idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """sso.link_existing_admins left at its default (false)."""
    yield from _server(idp, module_database_url, tmp_path_factory)


@pytest.fixture(scope="module")
def linking(
    idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """sso.link_existing_admins on; a database of its own, on the same kind of store."""
    kind = "sqlite" if module_database_url.startswith("sqlite") else "postgresql"
    with contextmanager(database_for)(kind, tmp_path_factory.mktemp("db")) as url:
        yield from _server(idp, url, tmp_path_factory, link_existing_admins=True)


def login_details(s: RunningServer, email: str) -> dict[str, Any]:
    """The details of the latest OIDC ``auth.login`` audit entry of ``email``."""
    entries = [e for e in audit(s, "auth.login") if e["actor"]["name"] == email]
    assert entries, f"no auth.login entry for {email}"
    latest = max(entries, key=lambda e: e["ts"])
    assert latest["details"]["method"] == "oidc"
    return latest["details"]


def sign_in_as(s: RunningServer, idp: FakeIdp, email: str, groups: list[str] | None = None) -> Any:
    idp.reset(email)
    if groups is not None:
        idp.identity["groups"] = groups
    return sign_in(s)


# -- email_verified -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "value"), enumerate([True, "true", "TRUE", "True"]))
def test_email_verified_true_or_the_string_true_is_accepted(
    server: RunningServer, idp: FakeIdp, n: int, value: Any
) -> None:
    email = f"verified-{n}@example.com"
    idp.reset(email)
    idp.identity["email_verified"] = value
    r = sign_in(server)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == email
    assert server.aw.auth.users.by_email(email) is not None


@pytest.mark.parametrize("value", [False, "false", "FALSE", "yes", "1", 1, "", " true", "true ", ["true"], None])
def test_any_other_email_verified_is_refused(server: RunningServer, idp: FakeIdp, value: Any) -> None:
    email = "unverified@example.com"
    idp.reset(email)
    if value is None:
        idp.identity.pop("email_verified")
    else:
        idp.identity["email_verified"] = value
    r = sign_in(server)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"] == NOT_VERIFIED
    assert server.aw.auth.users.by_email(email) is None


# -- the groups mapping at every sign-in ------------------------------------------------------------


def test_joining_a_mapped_group_promotes_at_the_next_sign_in(server: RunningServer, idp: FakeIdp) -> None:
    email = "grace@example.com"
    first = sign_in_as(server, idp, email, [])
    assert first.status_code == 200 and first.json()["user"]["role"] == "viewer"
    again = sign_in_as(server, idp, email, ["staff", "soc-analysts"])
    assert again.status_code == 200, again.text
    assert again.json()["user"]["role"] == "analyst"
    assert server.aw.auth.users.by_email(email).role == "analyst"
    changed = login_details(server, email)["role_changed"]
    assert changed == {"from": "viewer", "to": "analyst", "by": "sso.group_roles['soc-analysts']"}


def test_leaving_the_mapped_group_demotes_at_the_next_sign_in(server: RunningServer, idp: FakeIdp) -> None:
    email = "heidi@example.com"
    first = sign_in_as(server, idp, email, ["soc-analysts"])
    assert first.status_code == 200 and first.json()["user"]["role"] == "analyst"
    token = first.json()["access_token"]
    again = sign_in_as(server, idp, email, ["staff"])
    assert again.status_code == 200, again.text
    assert again.json()["user"]["role"] == "viewer"
    assert server.aw.auth.users.by_email(email).role == "viewer"
    assert login_details(server, email)["role_changed"] == {"from": "analyst", "to": "viewer", "by": "sso.default_role"}
    with server.client() as c:  # the session opened before the demotion has lost the analyst's rights
        me = c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and "alerts:write" not in me.json()["permissions"], me.text


def test_an_unchanged_group_changes_nothing(server: RunningServer, idp: FakeIdp) -> None:
    email = "ivan@example.com"
    assert sign_in_as(server, idp, email, ["soc-analysts"]).status_code == 200
    again = sign_in_as(server, idp, email, ["soc-analysts"])
    assert again.status_code == 200 and again.json()["user"]["role"] == "analyst"
    details = login_details(server, email)
    assert "role_changed" not in details and details["provisioned"] is False


def test_a_password_account_follows_the_mapping_too(server: RunningServer, idp: FakeIdp) -> None:
    server.aw.auth.users.create("judy@example.com", PASSWORD, "analyst")
    r = sign_in_as(server, idp, "judy@example.com", [])
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == "viewer"


def test_a_mapping_to_a_missing_role_refuses_the_sign_in_of_an_existing_account(
    server: RunningServer, idp: FakeIdp
) -> None:
    email = "ken@example.com"
    assert sign_in_as(server, idp, email, []).status_code == 200
    r = sign_in_as(server, idp, email, ["ghosts"])
    assert r.status_code == 403, r.text
    assert "sso.group_roles['ghosts']: the role 'ghost-role' does not exist" in r.text
    assert server.aw.auth.users.by_email(email).role == "viewer"


# -- admin accounts: sso.link_existing_admins ----------------------------------------------------------


def test_sign_in_to_a_local_admin_is_refused_naming_the_setting(server: RunningServer, idp: FakeIdp) -> None:
    r = sign_in_as(server, idp, "root@example.com", ["soc-analysts"])
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"].startswith(LINK_REFUSED)
    assert server.aw.auth.users.by_email("root@example.com").role == "admin"  # untouched
    failures = [e for e in audit(server, "auth.login.failure") if e["details"].get("method") == "oidc"]
    assert any(e["details"]["reason"].startswith("sso.link_existing_admins") for e in failures)
    with server.client() as c:  # the password still works
        pw = c.post("/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD})
    assert pw.status_code == 200


def test_a_local_non_admin_account_still_signs_in(server: RunningServer, idp: FakeIdp) -> None:
    server.aw.auth.users.create("lena@example.com", PASSWORD, "analyst")
    r = sign_in_as(server, idp, "lena@example.com", ["soc-analysts"])
    assert r.status_code == 200 and r.json()["user"]["role"] == "analyst"


def test_an_account_sign_on_created_keeps_signing_in_once_made_admin(server: RunningServer, idp: FakeIdp) -> None:
    email = "mallory-admin@example.com"
    made = sign_in_as(server, idp, email, ["soc-analysts"])
    assert made.status_code == 200 and made.json()["user"]["role"] == "analyst"
    user_id = made.json()["user"]["id"]
    server.aw.auth.users.update(user_id, role="admin")  # promoted by an administrator
    r = sign_in_as(server, idp, email, [])  # in no mapped group: an admin role is never taken away
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == "admin"
    assert "role_changed" not in login_details(server, email)


def test_a_deleted_sign_on_account_leaves_no_link_behind(server: RunningServer, idp: FakeIdp) -> None:
    email = "nina@example.com"
    made = sign_in_as(server, idp, email, [])
    assert made.status_code == 200
    assert server.aw.auth.users.delete(made.json()["user"]["id"]) is not None
    server.aw.auth.users.create(email, PASSWORD, "admin")  # the same address, now a password admin
    r = sign_in_as(server, idp, email, [])
    assert r.status_code == 403 and LINK_REFUSED in r.text


def test_with_linking_on_a_local_admin_signs_in_and_stays_admin(linking: RunningServer, idp: FakeIdp) -> None:
    r = sign_in_as(linking, idp, "root@example.com", [])
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == "admin"  # in no mapped group, yet not demoted
    assert linking.aw.auth.users.by_email("root@example.com").role == "admin"
    details = login_details(linking, "root@example.com")
    assert details["provisioned"] is False and "role_changed" not in details


def test_with_linking_on_non_admin_accounts_behave_as_before(linking: RunningServer, idp: FakeIdp) -> None:
    linking.aw.auth.users.create("oscar@example.com", PASSWORD, "viewer")
    r = sign_in_as(linking, idp, "oscar@example.com", ["soc-analysts"])
    assert r.status_code == 200 and r.json()["user"]["role"] == "analyst"
