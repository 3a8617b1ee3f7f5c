"""A software WebAuthn authenticator for the tests: an EC P-256 key, authenticator data,
client data and a "none" attestation in CBOR, built as a browser and authenticator would.

Each ceremony takes the options the server gave and knobs to break one thing at a time
(origin, RP id, challenge, counter, signature)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str = "localhost"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    sign_count: int = 0
    user_handle: bytes | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        doc = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(doc).encode()

    def _auth_data(self, rp_id: str | None, flags: int, count: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", count) + attested

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        kind: str = "webauthn.create",
        challenge: str | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.create()``: the registration credential as ``toJSON()`` gives it."""
        pk = options["publicKey"]
        self.user_handle = unb64u(pk["user"]["id"])
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose_key()
        auth_data = self._auth_data(rp_id, UP | UV | AT, self.sign_count, attested)
        client = self._client_data(kind, challenge or pk["challenge"], origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        cid = b64u(self.credential_id)
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client),
                "attestationObject": b64u(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        kind: str = "webauthn.get",
        challenge: str | None = None,
        count: int | None = None,
        bad_signature: bool = False,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()``: the assertion, the counter moved on by one (or ``count``)."""
        if count is None:
            self.sign_count += 1
            count = self.sign_count
        auth_data = self._auth_data(rp_id, UP | UV, count)
        client = self._client_data(kind, challenge or options["publicKey"]["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        if bad_signature:
            signature = self.key.sign(b"something else", ec.ECDSA(hashes.SHA256()))
        cid = b64u(self.credential_id)
        response = {
            "clientDataJSON": b64u(client),
            "authenticatorData": b64u(auth_data),
            "signature": b64u(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64u(self.user_handle)
        return {"id": cid, "rawId": cid, "type": "public-key", "response": response, "clientExtensionResults": {}}
