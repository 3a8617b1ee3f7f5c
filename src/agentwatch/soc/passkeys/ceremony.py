"""The WebAuthn ceremonies, through py_webauthn: the relying party from the settings, the
options a browser passes to ``navigator.credentials``, and the checks of its responses.

The client data is parsed here first (type, origin, challenge) so those refusals name the
rule without echoing the sender's text; py_webauthn then checks the RP id hash, the flags,
the attestation and the signature. The signature counter is checked by the caller once the
signature is known to be good (a counter alone proves nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorAssertionResponse,
    AuthenticatorAttestationResponse,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from agentwatch.api.errors import ApiError
from agentwatch.soc.passkeys.wire import AuthenticationIn, ClientData, RegistrationIn, b64url_decode

if TYPE_CHECKING:
    from agentwatch.config import Settings

log = structlog.get_logger("agentwatch.passkeys")

TIMEOUT_MS_PER_S = 1000
FIELD = "credential.response"

# py_webauthn's refusals, by the start of their message: the field and rule to answer with
_KNOWN = (
    ("Unexpected RP ID hash", "authenticatorData", "its RP ID hash is not that of passkeys.rp_id"),
    ("User was not present", "authenticatorData", "the user-present flag is not set"),
    ("User presence was required", "authenticatorData", "the user-present flag is not set"),
    ("User verification is required", "authenticatorData", "the user-verified flag is not set (required)"),
    ("Could not verify authentication signature", "signature", "does not verify with the passkey's key"),
)


class Refused(Exception):
    """A response failed a check; ``str()`` names the field and the rule."""


@dataclass(frozen=True)
class Party:
    rp_id: str
    rp_name: str
    origins: tuple[str, ...]
    user_verification: str

    @property
    def uv_required(self) -> bool:
        return self.user_verification == "required"


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def party(settings: Settings) -> Party:
    """The relying party: ``[passkeys]`` rp_id and origins, else (on loopback) ``localhost`` and
    the server's own loopback origins."""
    cfg = settings.passkeys
    if not cfg.enabled:
        raise ApiError("passkeys: turned off (passkeys.enabled = false)", status=404, code="NOT_FOUND")
    rp_id, origins = cfg.rp_id, tuple(cfg.origins)
    if rp_id is None or not origins:
        if not settings.is_loopback:
            raise ApiError(
                "passkeys: set passkeys.rp_id and passkeys.origins (the server does not listen on loopback)",
                status=503,
                code="UNAVAILABLE",
            )
        rp_id = rp_id or "localhost"
        if not origins:
            own = {f"http://localhost:{settings.port}", f"http://{_host_in_url(settings.host)}:{settings.port}"}
            origins = tuple(sorted(own))
    return Party(rp_id, cfg.rp_name, origins, cfg.user_verification)


def registration_options(
    rp: Party, challenge: bytes, user_id: str, email: str, existing: list[str], ttl_s: int
) -> dict[str, Any]:
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.rp_name,
        user_id=user_id.encode(),
        user_name=email,
        user_display_name=email,
        challenge=challenge,
        timeout=ttl_s * TIMEOUT_MS_PER_S,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement(rp.user_verification),
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(c)) for c in existing],
    )
    return orjson.loads(options_to_json(options))


def authentication_options(
    rp: Party, challenge: bytes, allowed: list[tuple[bytes, list[str]]], ttl_s: int
) -> dict[str, Any]:
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=ttl_s * TIMEOUT_MS_PER_S,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=cid, transports=[AuthenticatorTransport(t) for t in transports] or None)
            for cid, transports in allowed
        ],
        user_verification=UserVerificationRequirement(rp.user_verification),
    )
    return orjson.loads(options_to_json(options))


def check_client(rp: Party, data: ClientData, ceremony: str) -> None:
    """The client data's type and origin (the challenge is the caller's: it looks it up)."""
    field = f"{FIELD}.clientDataJSON"
    if data.type != ceremony:
        raise Refused(f"{field}: type must be {ceremony!r}")
    if data.origin not in rp.origins:
        raise Refused(f"{field}: origin is not one of passkeys.origins")


def _refusal(exc: Exception) -> Refused:
    text = str(exc)
    for start, field, rule in _KNOWN:
        if text.startswith(start):
            return Refused(f"{FIELD}.{field}: {rule}")
    if not isinstance(exc, WebAuthnException):
        log.info("passkeys.malformed_response", error=type(exc).__name__)
        text = "malformed"
    return Refused(f"{FIELD}: {text[:200]}")


@dataclass(frozen=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    backed_up: bool


def verify_registration(rp: Party, cred: RegistrationIn, challenge: bytes) -> NewCredential:
    raw_id = b64url_decode(cred.rawId)
    r = cred.response
    credential = RegistrationCredential(
        id=cred.id.rstrip("="),
        raw_id=raw_id,
        response=AuthenticatorAttestationResponse(
            client_data_json=b64url_decode(r.clientDataJSON),
            attestation_object=b64url_decode(r.attestationObject),
            transports=[AuthenticatorTransport(t) for t in r.transports] or None,
        ),
    )
    try:
        done = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            require_user_verification=rp.uv_required,
        )
    except Exception as exc:  # a third-party parser of untrusted bytes: any failure refuses
        raise _refusal(exc) from None
    if done.credential_id != raw_id:
        raise Refused("credential.rawId: is not the credential id in the attestation")
    return NewCredential(
        done.credential_id, done.credential_public_key, done.sign_count, done.aaguid, bool(done.credential_backed_up)
    )


def verify_assertion(rp: Party, cred: AuthenticationIn, challenge: bytes, public_key: bytes) -> int:
    """The response's signature counter, once everything else (signature included) holds."""
    r = cred.response
    credential = AuthenticationCredential(
        id=cred.id.rstrip("="),
        raw_id=b64url_decode(cred.rawId),
        response=AuthenticatorAssertionResponse(
            client_data_json=b64url_decode(r.clientDataJSON),
            authenticator_data=b64url_decode(r.authenticatorData),
            signature=b64url_decode(r.signature),
            user_handle=b64url_decode(r.userHandle) if r.userHandle else None,
        ),
    )
    try:
        done = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            credential_public_key=public_key,
            credential_current_sign_count=0,  # the caller compares, after the signature holds
            require_user_verification=rp.uv_required,
        )
    except Exception as exc:  # a third-party parser of untrusted bytes: any failure refuses
        raise _refusal(exc) from None
    return int(done.new_sign_count)
