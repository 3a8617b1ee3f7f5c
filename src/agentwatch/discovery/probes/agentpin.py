"""AgentPin identity: the discovery document, and signatures actually verified.

``/.well-known/agent-identity.json`` declares an entity, its agents and its
public keys (ES256 JWKs). A document is only a claim; what a scanner can verify
is a signed A2A agent card: its ``agentpin`` extension carries a detached
ECDSA P-256 signature over the canonical card (sorted keys, compact JSON, nulls
dropped, the extension itself removed). We verify that signature with
``cryptography`` and require the signing key to be one the same service
publishes in its discovery document, so a card cannot vouch for itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.probes.a2a import fetch_card
from agentwatch.discovery.signals import Service, Signal

IDENTITY_PATH = "/.well-known/agent-identity.json"
MAX_KEYS = 16


def _b64(data: str) -> bytes:
    data = data.strip()
    pad = "=" * (-len(data) % 4)
    try:
        return (
            base64.b64decode(data + pad, altchars=b"-_")
            if ("-" in data or "_" in data)
            else base64.b64decode(data + pad)
        )
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


def jwk_public_key(jwk: Any) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its JWK; ValueError when it is not a valid point."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("key is not an EC P-256 JWK")
    x, y = _b64(str(jwk.get("x", ""))), _b64(str(jwk.get("y", "")))
    if len(x) != 32 or len(y) != 32:
        raise ValueError("P-256 coordinates must be 32 bytes")
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    ).public_key()


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def canonical(card: dict[str, Any]) -> bytes:
    body = {k: v for k, v in card.items() if k != "agentpin"}
    return json.dumps(_drop_nulls(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signature(text: str) -> bytes:
    raw = _b64(text)
    if len(raw) == 64:  # JOSE form r || s
        return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return raw  # DER


def verify_card(card: dict[str, Any], published: list[dict[str, Any]]) -> tuple[bool, str]:
    """(verified, reason). Verified needs a valid signature by a key in the discovery document."""
    ext = card.get("agentpin")
    if not isinstance(ext, dict) or not isinstance(ext.get("signature"), str):
        return False, "agent card carries no agentpin signature"
    jwk = ext.get("public_key_jwk")
    try:
        key = jwk_public_key(jwk)
        key.verify(_signature(ext["signature"]), canonical(card), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False, "signature does not verify"
    except ValueError as exc:
        return False, f"invalid key or signature: {exc}"
    card_point = (jwk.get("x"), jwk.get("y"))
    if not any((k.get("x"), k.get("y")) == card_point for k in published if isinstance(k, dict)):
        return False, "signing key is not published in the discovery document"
    return True, "signature verified with a published key"


def _document(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("agents"), list):
        return None
    if not any(k in doc for k in ("agentpin_version", "entity", "issuer", "public_keys")):
        return None
    return doc


async def probe(http: Http, service: Service) -> list[Signal]:
    reply, card_found = await asyncio.gather(http.get(IDENTITY_PATH), fetch_card(http))
    doc = _document(reply.json()) if reply is not None and reply.status == 200 else None
    if doc is None:
        return []
    url = http.url(IDENTITY_PATH)
    keys = (
        [k for k in doc.get("public_keys", []) if isinstance(k, dict)][:MAX_KEYS]
        if isinstance(doc.get("public_keys"), list)
        else []
    )
    valid_keys = []
    for k in keys:
        try:
            jwk_public_key(k)
            valid_keys.append(k)
        except ValueError:
            continue
    agents = [
        {"agent_id": str(a.get("agent_id"))[:300], "name": str(a.get("name", ""))[:200], "status": a.get("status")}
        for a in doc["agents"][:50]
        if isinstance(a, dict) and a.get("agent_id")
    ]
    identity: dict[str, Any] = {
        "entity": str(doc.get("entity") or doc.get("issuer") or "")[:300],
        "agentpin_version": doc.get("agentpin_version"),
        "agents": agents,
        "public_keys": len(keys),
        "valid_public_keys": len(valid_keys),
        "verified": False,
        "verification": "no signed agent card to verify",
    }
    ev = {"host": service.host, "port": service.port, "url": url, "entity": identity["entity"], "agents": len(agents)}
    signals = [
        Signal(
            detector="agentpin_prober",
            signal_type="agentpin_discovery_document",
            description=f"AgentPin discovery document for {identity['entity'] or '(no entity)'} at {url}",
            confidence="medium" if valid_keys and agents else "low",
            evidence=ev,
            framework="agentpin",
            agent_type="agent",
        )
    ]
    if card_found is not None:
        card_path, card = card_found
        ok, reason = verify_card(card, valid_keys)
        identity.update(verified=ok, verification=reason, card=http.url(card_path))
        if ok:
            signals.append(
                Signal(
                    detector="agentpin_prober",
                    signal_type="agentpin_signature_verified",
                    description=f"AgentPin signature on {http.url(card_path)} verified with a key published at {url}",
                    confidence="confirmed",
                    evidence={**ev, "card": http.url(card_path), "kid": card["agentpin"]["public_key_jwk"].get("kid")},
                    framework="agentpin",
                    agent_type="agent",
                )
            )
        elif isinstance(card.get("agentpin"), dict):
            service.metadata["agentpin_warning"] = reason
    service.agentpin = identity
    return signals
