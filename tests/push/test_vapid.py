"""The VAPID identity on its own: the JWT's audience and lifetime, and the stored key."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine

from agentwatch.soc.push.vapid import KEY_FILE, Vapid, audience, load_or_create


@pytest.mark.parametrize(
    ("endpoint", "aud"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc?x=1", "https://fcm.googleapis.com"),
        ("https://Push.Example.com:443/a", "https://push.example.com"),
        ("https://push.example.com:8443/a", "https://push.example.com:8443"),
        ("http://127.0.0.1:9000/push/x", "http://127.0.0.1:9000"),
        ("https://[2001:db8::1]:8443/p", "https://[2001:db8::1]:8443"),
    ],
)
def test_the_audience_is_the_endpoints_origin(endpoint: str, aud: str) -> None:
    assert audience(endpoint) == aud


def test_the_token_is_es256_for_the_origin_and_lives_at_most_24_hours() -> None:
    vapid = Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:soc@example.com")
    header = vapid.authorization("https://push.example.com/send/1")
    token, key = header.removeprefix("vapid t=").split(", k=")
    assert key == vapid.public_key
    raw = base64.urlsafe_b64decode(key + "=")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    claims = jwt.decode(token, public, algorithms=["ES256"], audience="https://push.example.com")
    assert claims["sub"] == "mailto:soc@example.com"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, public, algorithms=["ES256"], audience="https://other.example.com")


def test_the_key_is_made_once_in_the_store_and_no_file_is_written(engine: Engine, tmp_path: Path) -> None:
    first = load_or_create(engine, tmp_path)
    assert load_or_create(engine, tmp_path).private_numbers() == first.private_numbers()
    assert not (tmp_path / KEY_FILE).exists()


def test_a_key_file_that_is_not_a_p256_key_is_refused(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key")
    with pytest.raises(ValueError):
        load_or_create(engine, tmp_path)
