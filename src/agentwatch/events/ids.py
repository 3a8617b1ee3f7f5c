"""Name-based ids (UUID version 5), built without ``uuid.UUID`` objects.

Trace ids and AOP event ids are derived from names once per ingested event; ``uuid.uuid5``
gives the same value but builds and validates a ``UUID`` object each time, a visible share
of a single-event request. These compute RFC 4122 section 4.3 directly: SHA-1 over the
namespace and the name, then the version and variant bits.
"""

from __future__ import annotations

import hashlib


def name_uuid_hex(namespace: bytes, name: str) -> str:
    """``uuid.uuid5(UUID(bytes=namespace), name).hex``: 32 lowercase hex digits."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])  # noqa: S324 (RFC 4122 v5)
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def name_uuid(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))``: the 8-4-4-4-12 form."""
    h = name_uuid_hex(namespace, name)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
