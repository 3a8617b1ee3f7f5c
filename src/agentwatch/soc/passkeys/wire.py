"""The JSON shapes the passkey routes read: WebAuthn's ``PublicKeyCredential.toJSON()``
forms, every binary field base64url and bounded, and the client data parsed and checked.

Lengths are of the decoded bytes; a credential id is at most 1023 bytes (WebAuthn's limit).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from agentwatch.api.errors import InvalidRequest
from agentwatch.events.model import CONTROL_RE

B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
MAX_CREDENTIAL_ID = 1023
MAX_CLIENT_DATA = 4096
MAX_AUTH_DATA = 4096
MAX_ATTESTATION = 32 * 1024
MAX_SIGNATURE = 1024
MAX_USER_HANDLE = 64
MAX_PUBLIC_KEY = 2048


def b64url_decode(text: str) -> bytes:
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url(max_bytes: int, min_bytes: int = 1) -> Any:
    def check(v: str) -> str:
        try:
            if not B64URL_RE.match(v):
                raise ValueError
            n = len(b64url_decode(v))
        except ValueError:
            raise PydanticCustomError("base64url", "must be base64url (A-Z a-z 0-9 - _)") from None
        if n < min_bytes:
            raise PydanticCustomError("length", f"must decode to at least {min_bytes} bytes")
        if n > max_bytes:
            raise PydanticCustomError("length", f"must decode to at most {max_bytes} bytes")
        return v

    # the character bound keeps the decoding cheap; the byte bound is the rule
    return Annotated[str, Field(min_length=1, max_length=(max_bytes * 4 + 2) // 3 + 2), AfterValidator(check)]


def _name(v: str) -> str:
    if CONTROL_RE.search(v):
        raise PydanticCustomError("control", "must not contain control characters")
    return v.strip()


CredentialId = _b64url(MAX_CREDENTIAL_ID)
Transport = Literal["usb", "nfc", "ble", "smart-card", "hybrid", "internal", "cable"]
Extensions = Annotated[dict[str, Any], Field(max_length=16)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AttestationResponse(_Shape):
    clientDataJSON: _b64url(MAX_CLIENT_DATA)  # type: ignore[valid-type]  # noqa: N815
    attestationObject: _b64url(MAX_ATTESTATION)  # type: ignore[valid-type]  # noqa: N815
    transports: list[Transport] = Field(default_factory=list, max_length=8)
    # given by browsers' toJSON() (WebAuthn level 3), not used: the attestation object holds them
    authenticatorData: _b64url(MAX_ATTESTATION) | None = None  # type: ignore[valid-type]  # noqa: N815
    publicKey: _b64url(MAX_PUBLIC_KEY) | None = None  # type: ignore[valid-type]  # noqa: N815
    publicKeyAlgorithm: int | None = Field(None, ge=-(2**31), le=2**31)  # noqa: N815


class AssertionResponse(_Shape):
    clientDataJSON: _b64url(MAX_CLIENT_DATA)  # type: ignore[valid-type]  # noqa: N815
    authenticatorData: _b64url(MAX_AUTH_DATA, 37)  # type: ignore[valid-type]  # noqa: N815
    signature: _b64url(MAX_SIGNATURE)  # type: ignore[valid-type]
    userHandle: _b64url(MAX_USER_HANDLE) | None = None  # type: ignore[valid-type]  # noqa: N815


class _Credential(_Shape):
    id: CredentialId  # type: ignore[valid-type]
    rawId: CredentialId  # type: ignore[valid-type]  # noqa: N815
    type: Literal["public-key"]
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None  # noqa: N815
    clientExtensionResults: Extensions = Field(default_factory=dict)  # noqa: N815


class RegistrationIn(_Credential):
    response: AttestationResponse


class AuthenticationIn(_Credential):
    response: AssertionResponse


class RegisterBody(_Shape):
    """``POST /api/v1/passkeys``: the result of ``navigator.credentials.create()``."""

    name: Annotated[str, Field(max_length=64), AfterValidator(_name)] = ""
    credential: RegistrationIn


class VerifyBody(_Shape):
    """``POST /api/v1/passkeys/verify``: the result of ``navigator.credentials.get()``."""

    credential: AuthenticationIn


class ChallengeBody(_Shape):
    purpose: Literal["register", "login"]
    email: str | None = Field(None, min_length=1, max_length=320)


@dataclass(frozen=True)
class ClientData:
    type: str
    challenge: bytes
    origin: str


def client_data(encoded: str, field: str = "credential.response.clientDataJSON") -> ClientData:
    """The client data a response carries: a JSON object with string ``type``, ``challenge``
    (base64url) and ``origin``; 400 naming the field otherwise."""
    try:
        doc = orjson.loads(b64url_decode(encoded))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidRequest(f"{field}: must be base64url of a JSON object") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(f"{field}: must be base64url of a JSON object")
    for key in ("type", "challenge", "origin"):
        if not isinstance(doc.get(key), str) or not doc[key] or len(doc[key]) > 512:
            raise InvalidRequest(f"{field}: {key!r} must be a string of 1 to 512 characters")
    if not B64URL_RE.match(doc["challenge"]):
        raise InvalidRequest(f"{field}: 'challenge' must be base64url")
    return ClientData(doc["type"], b64url_decode(doc["challenge"]), doc["origin"])
