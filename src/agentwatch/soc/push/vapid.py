"""The server's VAPID identity (RFC 8292): one P-256 key pair, and the signed JWT per request.

The private key is generated once, into ``data_dir/push_vapid.pem`` (PKCS#8 PEM, created with
mode 0600, never logged). Every node of a cluster must share that file: a browser's subscription
is bound to the public key it was made with, and a push signed with another key is refused.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = "push_vapid.pem"
JWT_LIFETIME_S = 12 * 3600  # RFC 8292 allows at most 24 h


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key as an uncompressed P-256 point (65 bytes), as Web Push exchanges keys."""
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _read(path: Path) -> ec.EllipticCurvePrivateKey:
    for _ in range(50):  # another process may be writing it right now
        pem = path.read_bytes()
        if pem.strip():
            key = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise RuntimeError(f"{path}: not a P-256 private key; delete it to make a new one")
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty; delete it to make a new key pair")


def load_or_create(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The key in ``data_dir/push_vapid.pem``; made there (mode 0600) when there is none."""
    path = Path(data_dir).expanduser() / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return _read(path)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def audience(endpoint: str) -> str:
    """The origin of ``endpoint`` (scheme, host and a non-default port), the JWT's ``aud``."""
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(scheme)
    port = parts.port
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


class Vapid:
    """Signs the ``Authorization: vapid t=..., k=...`` header of one push request."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self._key = key
        self.subject = subject
        self.public_key = b64url(public_bytes(key.public_key()))

    def __repr__(self) -> str:  # never the private key
        return f"Vapid(public_key={self.public_key!r})"

    def token(self, endpoint: str, now: float | None = None) -> str:
        claims = {"aud": audience(endpoint), "exp": int(now or time.time()) + JWT_LIFETIME_S, "sub": self.subject}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "JWT"})

    def authorization(self, endpoint: str) -> str:
        return f"vapid t={self.token(endpoint)}, k={self.public_key}"
