"""Register a passkey and sign in with it, through the real server on both stores."""

from __future__ import annotations

from agentwatch.soc.auth.credentials import COOKIE
from tests.passkeys.authenticator import b64u
from tests.passkeys.conftest import PASSKEYS, Site


def test_register_then_login_answers_like_the_password_login(site: Site) -> None:
    uid, email, headers, auth = site.enrolled()
    r = site.login(auth)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["token_type"] == "bearer" and doc["user"]["id"] == uid
    assert doc["access_token"] and doc["refresh_token"].startswith("awr_")
    assert r.headers["cache-control"] == "no-store"
    assert r.cookies.get(COOKIE) == doc["access_token"]
    me = site.c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {doc['access_token']}"})
    assert me.json()["user"]["email"] == email
    refreshed = site.c.post("/api/v1/auth/refresh", json={"refresh_token": doc["refresh_token"]})
    assert refreshed.status_code == 200
    entry = next(e for e in site.audit("auth.login") if e["actor"]["id"] == uid)
    assert entry["details"]["method"] == "passkey" and entry["status"] == 200


def test_login_for_an_email_lists_its_passkeys_and_an_unknown_email_looks_alike(site: Site) -> None:
    _, email, _, auth = site.enrolled()
    known = site.begin("login", email=email)["publicKey"]["allowCredentials"]
    assert [c["id"] for c in known] == [b64u(auth.credential_id)]
    unknown = site.begin("login", email="nobody@example.com")["publicKey"]["allowCredentials"]
    assert len(unknown) == 1 and unknown[0]["id"] != known[0]["id"]
    again = site.begin("login", email="nobody@example.com")["publicKey"]["allowCredentials"]
    assert again == unknown  # stable, so repeated asks do not tell it apart
    assert site.login(auth, email=email).status_code == 200


def test_discoverable_login_without_email(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    options = site.begin("login")
    assert options["publicKey"].get("allowCredentials", []) == []
    assert options["purpose"] == "login" and options["publicKey"]["rpId"] == "localhost"
    assert site.c.post("/api/v1/passkeys/verify", json={"credential": auth.get(options)}).status_code == 200


def test_list_shows_only_ones_own_and_counter_moves(site: Site) -> None:
    uid, _, headers, auth = site.enrolled()
    _, _, other_headers, _ = site.enrolled()
    mine = site.c.get(PASSKEYS, headers=headers).json()["passkeys"]
    assert [k["user_id"] for k in mine] == [uid] and mine[0]["name"] == "laptop"
    assert "public_key" not in mine[0]
    assert site.login(auth).status_code == 200
    assert site.c.get(PASSKEYS, headers=headers).json()["passkeys"][0]["sign_count"] == 1
    assert all(k["user_id"] != uid for k in site.c.get(PASSKEYS, headers=other_headers).json()["passkeys"])
    assert site.c.get(PASSKEYS, params={"user_id": uid}, headers=other_headers).status_code == 403
    assert [k["id"] for k in site.c.get(PASSKEYS, params={"user_id": uid}, headers=site.admin).json()["passkeys"]] == [
        mine[0]["id"]
    ]


def test_revoke_own_and_admin_revokes_anyones_but_not_another_users(site: Site) -> None:
    _, _, headers, auth = site.enrolled()
    _, _, other_headers, other_auth = site.enrolled()
    key_id = site.c.get(PASSKEYS, headers=headers).json()["passkeys"][0]["id"]
    other_id = site.c.get(PASSKEYS, headers=other_headers).json()["passkeys"][0]["id"]
    assert site.c.delete(f"{PASSKEYS}/{other_id}", headers=headers).status_code == 404
    assert site.c.delete(f"{PASSKEYS}/{key_id}", headers=headers).json() == {"id": key_id, "revoked": True}
    assert site.login(auth).status_code == 401  # a revoked passkey no longer signs in
    assert site.c.delete(f"{PASSKEYS}/{other_id}", headers=site.admin).status_code == 200
    assert site.login(other_auth).status_code == 401
    assert site.c.delete(f"{PASSKEYS}/{key_id}", headers=headers).status_code == 404
    assert site.c.delete(f"{PASSKEYS}/not-a-uuid", headers=headers).json()["error"]["message"].startswith("passkey_id:")
    assert site.audit("passkey.revoke")


def test_a_credential_registers_once(site: Site) -> None:
    _, _, headers, auth = site.enrolled()
    again = site.register(headers, auth)
    assert again.status_code == 409 and again.json()["error"]["message"].startswith("credential.id:")
    _, _, other_headers = site.user()
    assert site.register(other_headers, auth).status_code == 409  # nor for another user


def test_a_user_has_at_most_max_per_user_passkeys(site: Site) -> None:
    limit = site.srv.aw.settings.passkeys.max_per_user
    _, _, headers = site.user()
    for _ in range(limit):
        assert site.register(headers, site.authenticator()).status_code == 201
    r = site.c.post("/api/v1/passkeys/challenge", json={"purpose": "register"}, headers=headers)
    assert r.status_code == 409 and "passkeys.max_per_user" in r.json()["error"]["message"]
    assert len(site.c.get(PASSKEYS, headers=headers).json()["passkeys"]) == limit
