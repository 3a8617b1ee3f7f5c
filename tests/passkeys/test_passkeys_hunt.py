"""Defects found by review: a deleted user's passkeys, and public login challenges that could
fill the pending total (blocking every passkey sign-in) or push out a named account's own
ceremonies."""

from __future__ import annotations

from sqlalchemy import func, select

from agentwatch.soc.auth_schema import users
from agentwatch.soc.passkeys import store
from agentwatch.soc.passkeys.schema import passkey_challenges, passkeys
from tests.passkeys.conftest import PASSKEYS, VERIFY, Site


def _pending(site: Site) -> int:
    with site.srv.aw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(passkey_challenges)).scalar_one())


def test_deleting_a_user_removes_their_passkeys(site: Site) -> None:
    uid, _, _, auth = site.enrolled()
    assert site.c.delete(f"/api/v1/users/{uid}", headers=site.admin).status_code == 200
    assert store.of_user(site.srv.aw.engine, uid) == []
    with site.srv.aw.engine.connect() as conn:
        assert conn.execute(select(passkeys.c.id).where(passkeys.c.user_id == uid)).first() is None
    r = site.login(auth)
    assert r.status_code == 401 and r.json()["error"]["message"] == "credential.id: no such passkey is registered"


def test_public_login_challenges_store_nothing_so_a_flood_blocks_no_one(site: Site) -> None:
    before = _pending(site)
    for _ in range(30):
        site.begin("login")
    _, email, _, _ = site.enrolled()
    for _ in range(10):
        site.begin("login", email=email)
    assert _pending(site) <= before  # nothing kept: there is no total for a flood to fill


def test_login_challenges_naming_a_user_do_not_push_out_their_registration(site: Site) -> None:
    _, email, headers = site.user()
    options = site.begin("register", headers)
    for _ in range(site.srv.aw.settings.passkeys.max_challenges_per_user + 1):
        site.begin("login", email=email)  # anyone may ask these, naming the victim
    r = site.c.post(PASSKEYS, json={"credential": site.authenticator().create(options)}, headers=headers)
    assert r.status_code == 201, r.text


def test_a_login_challenge_is_still_used_once_and_cannot_be_replayed_through_registration(site: Site) -> None:
    _, _, headers, auth = site.enrolled()
    options = site.begin("login")
    assert site.c.post(VERIFY, json={"credential": auth.get(options)}).status_code == 200
    # presenting the spent login challenge to registration must not clear its spent mark
    reg = site.begin("register", headers)
    forged = {"publicKey": {**reg["publicKey"], "challenge": options["publicKey"]["challenge"]}}
    r = site.c.post(PASSKEYS, json={"credential": site.authenticator().create(forged)}, headers=headers)
    assert r.status_code == 400 and "issued for 'login'" in r.json()["error"]["message"]
    r = site.c.post(VERIFY, json={"credential": auth.get(options)})
    assert r.status_code == 401 and r.json()["error"]["message"].endswith("challenge is unknown or was used already")


def test_a_tampered_login_challenge_is_refused(site: Site) -> None:
    _, _, _, auth = site.enrolled()
    options = site.begin("login")
    ch = options["publicKey"]["challenge"]
    tampered = ch[:-2] + ("AA" if ch[-2:] != "AA" else "BA")
    r = site.c.post(VERIFY, json={"credential": auth.get(options, challenge=tampered)})
    assert r.status_code == 401 and r.json()["error"]["message"].endswith("challenge is unknown or was used already")


def test_an_authenticator_of_a_deleted_user_can_be_registered_again(site: Site) -> None:
    uid, _, _, auth = site.enrolled()
    with site.srv.aw.engine.begin() as conn:  # deleted by a path that knows nothing of passkeys
        conn.execute(users.delete().where(users.c.id == uid))
    _, _, headers = site.user()
    r = site.register(headers, auth)  # the same credential id as the dead account's passkey
    assert r.status_code == 201, r.text
