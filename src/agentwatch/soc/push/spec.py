"""The body of ``POST /api/v1/push/subscriptions``: the browser's ``PushSubscription`` JSON
(``{endpoint, expirationTime, keys: {p256dh, auth}}``) plus an optional ``device_name``.

Keys are base64url (padding optional), as ``PushSubscription.toJSON()`` gives them: ``p256dh``
an uncompressed P-256 point (65 bytes) that lies on the curve, ``auth`` 16 bytes."""

from __future__ import annotations

import base64
import binascii
import re
import time

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, field_validator

B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
MAX_ENDPOINT = 2048
AUTH_BYTES = 16
POINT_BYTES = 65
MAX_EXPIRATION_MS = 253_402_300_799_999  # the end of the year 9999


def unb64url(value: str) -> bytes:
    """Bytes of a base64url text; ValueError when it is not base64url."""
    if not B64URL.fullmatch(value):
        raise ValueError("must be base64url (A-Z a-z 0-9 - _)")
    stripped = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("must be base64url (A-Z a-z 0-9 - _)") from None


class KeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p256dh: str = Field(min_length=1, max_length=128, description="the browser's P-256 public key, base64url")
    auth: str = Field(min_length=1, max_length=64, description="the browser's 16-byte auth secret, base64url")

    @field_validator("p256dh")
    @classmethod
    def _point(cls, v: str) -> str:
        raw = unb64url(v)
        if len(raw) != POINT_BYTES or raw[0] != 4:
            raise ValueError(f"must be an uncompressed P-256 point ({POINT_BYTES} bytes starting 0x04)")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise ValueError("is not a point on the P-256 curve") from None
        return v

    @field_validator("auth")
    @classmethod
    def _auth(cls, v: str) -> str:
        if len(unb64url(v)) != AUTH_BYTES:
            raise ValueError(f"must be {AUTH_BYTES} bytes")
        return v


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=MAX_ENDPOINT, description="the push service URL (https)")
    keys: KeysIn
    expirationTime: float | None = Field(  # noqa: N815 - the browser's own name
        None, ge=0, le=MAX_EXPIRATION_MS, description="when the subscription ends, ms since the epoch (null: never)"
    )
    device_name: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$", description="a name to tell devices apart"
    )

    @field_validator("expirationTime")
    @classmethod
    def _future(cls, v: float | None) -> float | None:
        if v is not None and v / 1000 <= time.time():
            raise ValueError("is in the past")
        return v
