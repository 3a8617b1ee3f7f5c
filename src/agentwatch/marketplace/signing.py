"""Canonical bytes, digests and Ed25519 signatures of marketplace items.

Canonical JSON (used for both the manifest digest and the signed item): the value written with
keys sorted by code point, no whitespace (``,`` and ``:`` as separators), strings escaped as
Python's ``json.dumps(..., ensure_ascii=False)`` escapes them (``"``, ``\\`` and control
characters; every other character as itself), encoded as UTF-8. Numbers are integers only: a
float anywhere in an item makes it unverifiable (its text has more than one spelling).

- ``sha256``: lowercase hex SHA-256 of the canonical JSON of the item's ``manifest`` (a detection's
  manifest is a JSON string, the Sigma YAML; a playbook's or plugin's an object).
- ``signature``: ``{"alg": "ed25519", "key_id", "value"}``; ``value`` is the base64 Ed25519
  signature of :data:`DOMAIN` followed by the canonical JSON of the item without its
  ``signature`` member (every other member, ``sha256`` included). ``key_id`` is the first 16 hex
  digits of the SHA-256 of the raw 32-byte public key.
- an index may be signed as a whole too (it must be when it carries a ``sequence``): its
  top-level ``signature``, of the same shape, signs :data:`INDEX_DOMAIN` followed by the
  canonical JSON of the index document without its ``signature`` member (``format``,
  ``publisher``, ``sequence`` and every item, each with its own signature).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DOMAIN = b"agentwatch-marketplace-item/1\n"
INDEX_DOMAIN = b"agentwatch-marketplace-index/1\n"


class NotCanonical(ValueError):
    """The value holds something canonical JSON does not allow (a float, a non-string key)."""


def _check(value: Any, depth: int = 0) -> None:
    if depth > 64:
        raise NotCanonical("nested deeper than 64 levels")
    if isinstance(value, float):
        raise NotCanonical("holds a number with a fraction or exponent (integers only)")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise NotCanonical("holds a non-string key")
            _check(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check(v, depth + 1)


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``; raises NotCanonical."""
    _check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_sha256(manifest: Any) -> str:
    return hashlib.sha256(canonical(manifest)).hexdigest()


def signed_bytes(item: dict[str, Any], domain: bytes = DOMAIN) -> bytes:
    """What the publisher signs: the domain line and the item (or index) without ``signature``."""
    return domain + canonical({k: v for k, v in item.items() if k != "signature"})


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode()


def load_public(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from the base64 of its 32 raw bytes; ValueError naming the rule."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64") from None
    if len(raw) != 32:
        raise ValueError("must be the base64 of a 32-byte Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def _signature(message: bytes, private: Ed25519PrivateKey) -> dict[str, str]:
    value = private.sign(message)
    return {"alg": "ed25519", "key_id": key_id(private.public_key()), "value": base64.b64encode(value).decode()}


def sign_item(item: dict[str, Any], private: Ed25519PrivateKey) -> dict[str, Any]:
    """``item`` with its ``sha256`` computed and its ``signature`` made by ``private``."""
    out = {k: v for k, v in item.items() if k != "signature"}
    out["sha256"] = manifest_sha256(out["manifest"])
    out["signature"] = _signature(signed_bytes(out), private)
    return out


def sign_index(doc: dict[str, Any], private: Ed25519PrivateKey) -> dict[str, Any]:
    """The index ``doc`` with each item signed, then the whole signed (its ``sequence`` too)."""
    out = {k: v for k, v in doc.items() if k != "signature"}
    out["items"] = [sign_item(item, private) for item in out["items"]]
    out["signature"] = _signature(signed_bytes(out, INDEX_DOMAIN), private)
    return out


def _check_signature(doc: dict[str, Any], trusted: dict[str, Ed25519PublicKey], domain: bytes, what: str) -> str | None:
    sig = doc.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519":
        return "signature: missing, or its alg is not ed25519"
    key = trusted.get(str(sig.get("key_id", "")))
    if key is None:
        return f"signature.key_id: {str(sig.get('key_id'))[:32]!r} is not a trusted publisher key"
    try:
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
        key.verify(value, signed_bytes(doc, domain))
    except (binascii.Error, ValueError, InvalidSignature):
        return f"signature: does not verify with the publisher key (the {what} was changed or signed by another key)"
    except NotCanonical as exc:
        return f"{what}: {exc}"
    return None


def verify_index(doc: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> str | None:
    """None when the index ``doc`` as a whole is intact and signed by a key of ``trusted``, else why not."""
    return _check_signature(doc, trusted, INDEX_DOMAIN, "index")


def verify_item(item: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> str | None:
    """None when ``item`` is intact and signed by a key of ``trusted`` (key id -> key), else why not."""
    sig = item.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519":
        return "signature: missing, or its alg is not ed25519"
    if str(sig.get("key_id", "")) not in trusted:
        return f"signature.key_id: {str(sig.get('key_id'))[:32]!r} is not a trusted publisher key"
    try:
        digest = manifest_sha256(item.get("manifest"))
    except NotCanonical as exc:
        return f"manifest: {exc}"
    if digest != item.get("sha256"):
        return "sha256: does not match the manifest (the manifest was changed after signing)"
    return _check_signature(item, trusted, DOMAIN, "item")
