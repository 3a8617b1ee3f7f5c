"""Each check of a ceremony refuses, names the field, and (for sign-in) is audited."""

from __future__ import annotations

import time

from sqlalchemy import update

from agentwatch.soc.passkeys import signed
from agentwatch.soc.passkeys.schema import passkey_challenges
from agentwatch.soc.passkeys.wire import b64url
from tests.passkeys.conftest import PASSKEYS, PER_ACCOUNT, VERIFY, Site


def _message(r) -> str:  # type: ignore[no-untyped-def]
    return r.json()["error"]["message"]


def test_wrong_origin_is_refused_at_registration_and_login(site: Site) -> None:
    _, _, headers = site.user()
    r = site.register(headers, site.authenticator(), origin="https://evil.example")
    assert (
        r.status_code == 400
        and _message(r) == "credential.response.clientDataJSON: origin is not one of passkeys.origins"
    )
    _, _, _, auth = site.enrolled()
    r = site.login(auth, origin="https://evil.example")
    assert r.status_code == 401 and "origin" in _message(r)


def test_wrong_rp_id_hash_is_refused(site: Site) -> None:
    _, _, headers = site.user()
    r = site.register(headers, site.authenticator(), rp_id="evil.example")
    assert r.status_code == 400 and _message(r).startswith("credential.response.authenticatorData: its RP ID hash")
    _, _, _, auth = site.enrolled()
    r = site.login(auth, rp_id="evil.example")
    assert r.status_code == 401 and "RP ID hash" in _message(r)


def test_a_challenge_is_used_once(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    options = site.begin("login")
    assert site.c.post(VERIFY, json={"credential": auth.get(options)}).status_code == 200
    r = site.c.post(VERIFY, json={"credential": auth.get(options)})
    assert r.status_code == 401 and _message(r).endswith("challenge is unknown or was used already")
    _, _, headers = site.user()
    fresh = site.authenticator()
    options = site.begin("register", headers)
    site.c.post(PASSKEYS, json={"credential": fresh.create(options, origin="https://evil.example")}, headers=headers)
    r = site.c.post(PASSKEYS, json={"credential": fresh.create(options)}, headers=headers)
    assert r.status_code == 400 and "used already" in _message(r)  # a refused attempt spends it too


def test_an_expired_challenge_is_refused(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    options = site.begin("login")
    stale = signed.make(site.srv.aw.auth, None, 300, now=time.time() - 301)  # made five minutes ago
    r = site.c.post(VERIFY, json={"credential": auth.get(options, challenge=b64url(stale))})
    assert r.status_code == 401 and _message(r).endswith("challenge has expired")
    _, _, headers = site.user()
    options = site.begin("register", headers)
    with site.srv.aw.engine.begin() as conn:  # as if the five minutes had passed
        conn.execute(
            update(passkey_challenges)
            .where(passkey_challenges.c.purpose == "register")
            .values(expires_at=time.time() - 1)
        )
    r = site.c.post(PASSKEYS, json={"credential": site.authenticator().create(options)}, headers=headers)
    assert r.status_code == 400 and _message(r).endswith("challenge has expired")


def test_a_challenge_of_the_other_purpose_is_refused(site: Site) -> None:
    _, _, headers, auth = site.enrolled()
    register_options = site.begin("register", headers)
    r = site.c.post(VERIFY, json={"credential": auth.get(register_options)})
    assert r.status_code == 401 and "issued for 'register'" in _message(r)
    login_options = site.begin("login")
    r = site.c.post(
        PASSKEYS,
        json={
            "credential": site.authenticator().create(
                {"publicKey": {**register_options["publicKey"], "challenge": login_options["publicKey"]["challenge"]}}
            )
        },
        headers=headers,
    )
    assert r.status_code == 400 and "issued for 'login'" in _message(r)


def test_a_register_challenge_of_another_user_is_refused(site: Site) -> None:
    _, _, headers = site.user()
    _, _, other = site.user()
    options = site.begin("register", headers)
    r = site.c.post(PASSKEYS, json={"credential": site.authenticator().create(options)}, headers=other)
    assert r.status_code == 400 and _message(r).endswith("challenge was issued to another user")


def test_a_bad_signature_is_refused(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    r = site.login(auth, bad_signature=True)
    assert r.status_code == 401
    assert _message(r) == "credential.response.signature: does not verify with the passkey's key"
    failure = site.audit("auth.login.failure")[0]
    assert failure["details"]["method"] == "passkey" and "signature" in failure["details"]["reason"]


def test_a_counter_that_does_not_increase_is_refused_and_audited_as_a_clone(site: Site) -> None:
    uid, _, _, auth = site.enrolled()
    assert site.login(auth, count=5).status_code == 200
    r = site.login(auth, count=5)
    assert r.status_code == 401 and "signature counter did not increase" in _message(r)
    assert site.login(auth, count=3).status_code == 401
    clones = [e for e in site.audit("auth.passkey.cloned") if e["details"].get("user_id") == uid]
    assert [(e["details"]["stored_count"], e["details"]["presented_count"]) for e in clones] == [(5, 3), (5, 5)]
    assert site.login(auth, count=6).status_code == 200


def test_an_unknown_credential_is_refused(site: Site) -> None:
    r = site.login(site.authenticator())
    assert r.status_code == 401 and _message(r) == "credential.id: no such passkey is registered"


def test_a_passkey_of_another_account_than_the_email_is_refused(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    _, other_email, _, _ = site.enrolled()
    r = site.login(auth, email=other_email)
    assert r.status_code == 401 and "not a passkey of the account" in _message(r)


def test_a_disabled_user_cannot_sign_in_with_a_passkey(site: Site) -> None:
    uid, _, _, auth = site.enrolled()
    assert site.c.put(f"/api/v1/users/{uid}", json={"disabled": True}, headers=site.admin).status_code == 200
    r = site.login(auth)
    assert r.status_code == 401 and "disabled" in _message(r)


def test_failed_passkey_sign_ins_are_throttled_like_password_logins(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    for _ in range(PER_ACCOUNT):
        assert site.login(auth, bad_signature=True).status_code == 401
    r = site.login(auth)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert any(e["details"].get("method") == "passkey" for e in site.audit("auth.login.throttled"))


def test_a_success_clears_the_accounts_failures(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    for _ in range(2):
        for _ in range(PER_ACCOUNT - 1):
            assert site.login(auth, bad_signature=True).status_code == 401
        assert site.login(auth).status_code == 200
