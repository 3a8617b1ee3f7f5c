"""The server's VAPID identity (RFC 8292): one P-256 key pair, and the signed JWT per request.

The key pair lives in the store (table ``push_vapid``, one row), so every node of a cluster signs
with the same key: a browser's subscription is bound to the public key it was made with, and a
push signed with another key is refused. The first node to need it makes it; the row's primary
key lets only one node's insert win, and the others read the winner's. A key file an earlier
version made (``data_dir/push_vapid.pem``) is taken over when the store holds none yet. The
private key is never logged.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from agentwatch.soc.push.schema import push_vapid

KEY_FILE = "push_vapid.pem"
JWT_LIFETIME_S = 12 * 3600  # RFC 8292 allows at most 24 h


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key as an uncompressed P-256 point (65 bytes), as Web Push exchanges keys."""
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _load(pem: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise RuntimeError(f"{where}: not a P-256 private key")
    return key


def _stored(engine: Engine) -> bytes | None:
    with engine.connect() as conn:
        pem = conn.execute(select(push_vapid.c.private_key).where(push_vapid.c.id == 1)).scalar()
    return None if pem is None else pem.encode()


def load_or_create(engine: Engine, data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The cluster's key from the store; made there once (or taken over from an earlier
    version's ``data_dir/push_vapid.pem``) when there is none."""
    pem = _stored(engine)
    if pem is None:
        path = Path(data_dir).expanduser() / KEY_FILE
        if path.is_file():
            key = _load(path.read_bytes(), str(path))
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        mine = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            with engine.begin() as conn:
                conn.execute(push_vapid.insert().values(id=1, private_key=mine.decode(), created_at=time.time()))
        except IntegrityError:
            pass  # another node made it first: its key is the cluster's
        pem = _stored(engine)
        if pem is None:  # pragma: no cover - the row is never removed
            raise RuntimeError("push_vapid: the key pair could not be stored")
    return _load(pem, "push_vapid")


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
