"""Every input is bounded and validated; errors name the field. The authenticated routes
answer 401 without a credential and 403 without the permission or for an API key."""

from __future__ import annotations

from tests.passkeys.authenticator import b64u
from tests.passkeys.conftest import CHALLENGE, PASSKEYS, VERIFY, Site


def _message(r) -> str:  # type: ignore[no-untyped-def]
    return r.json()["error"]["message"]


def _assertion(site: Site) -> dict:  # type: ignore[type-arg]
    _, _, _, auth = site.enrolled()
    return auth.get(site.begin("login"))


def test_oversized_fields_are_refused_naming_the_field(site: Site) -> None:
    cred = _assertion(site)
    big_id = {**cred, "id": b64u(b"x" * 1024), "rawId": b64u(b"x" * 1024)}
    r = site.c.post(VERIFY, json={"credential": big_id})
    assert r.status_code == 400 and _message(r).startswith("credential.id:")
    big_sig = {**cred, "response": {**cred["response"], "signature": b64u(b"s" * 1025)}}
    r = site.c.post(VERIFY, json={"credential": big_sig})
    assert r.status_code == 400 and _message(r).startswith("credential.response.signature:")
    r = site.c.post(VERIFY, json={"credential": {**cred, "pad": "x" * 70_000}})
    assert r.status_code == 413
    _, _, headers = site.user()
    r = site.c.post(PASSKEYS, json={"name": "n" * 65, "credential": {}}, headers=headers)
    assert r.status_code == 400 and _message(r).startswith("name:")
    r = site.c.post(CHALLENGE, json={"purpose": "login", "email": "e" * 321})
    assert r.status_code == 400 and _message(r).startswith("email:")


def test_malformed_fields_are_refused_naming_the_field(site: Site) -> None:
    cred = _assertion(site)
    cases = {
        "credential.rawId": {**cred, "rawId": "not base64url!"},
        "credential.type": {**cred, "type": "password"},
        "credential.response.clientDataJSON": {
            **cred,
            "response": {**cred["response"], "clientDataJSON": b64u(b"[1]")},
        },
        "credential.response.authenticatorData": {
            **cred,
            "response": {**cred["response"], "authenticatorData": "AAAA"},
        },
        "credential.unknown": {**cred, "unknown": 1},
    }
    for field, bad in cases.items():
        r = site.c.post(VERIFY, json={"credential": bad})
        assert r.status_code == 400 and _message(r).startswith(field + ":"), (field, r.text)
    assert site.c.post(VERIFY, json=[1]).status_code == 400
    r = site.c.post(CHALLENGE, json={"purpose": "enrol"})
    assert r.status_code == 400 and _message(r).startswith("purpose:")
    r = site.c.post(CHALLENGE, json={"purpose": "login", "email": "not an email"})
    assert r.status_code == 400 and _message(r).startswith("email:")


def test_authenticated_routes_need_a_credential_and_the_account_permission(site: Site) -> None:
    c = site.c
    assert c.get(PASSKEYS).status_code == 401
    assert c.post(PASSKEYS, json={}).status_code == 401
    assert c.delete(f"{PASSKEYS}/00000000-0000-4000-8000-000000000000").status_code == 401
    assert c.post(CHALLENGE, json={"purpose": "register"}).status_code == 401
    made = c.post("/api/v1/api-keys", headers=site.admin, json={"name": "k", "scopes": ["events:read"]}).json()
    no_account = {"X-API-Key": made["key"]}
    assert c.get(PASSKEYS, headers=no_account).status_code == 403
    assert c.post(CHALLENGE, json={"purpose": "register"}, headers=no_account).status_code == 403
    made = c.post("/api/v1/api-keys", headers=site.admin, json={"name": "k", "scopes": ["account"]}).json()
    key = {"X-API-Key": made["key"]}
    assert c.get(PASSKEYS, headers=key).status_code == 200
    r = c.post(CHALLENGE, json={"purpose": "register"}, headers=key)
    assert r.status_code == 403 and "signed-in user" in _message(r)  # a key cannot enrol a passkey
    _, _, viewer = site.user("viewer")
    assert c.post(CHALLENGE, json={"purpose": "register"}, headers=viewer).status_code == 200
    _, _, ingest = site.user("ingest")
    assert c.post(CHALLENGE, json={"purpose": "register"}, headers=ingest).status_code == 403
