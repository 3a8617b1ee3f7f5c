#!/usr/bin/env python3
"""Sign a marketplace index file in place with a publisher's Ed25519 private key.

    .venv/bin/python scripts/marketplace_sign.py --key /tmp/agentwatch-marketplace.key [--new] INDEX.json

Each item gets its ``sha256`` (of the canonical manifest) and its ``signature``, then the index
its own top-level ``signature``, covering its ``sequence`` (see ``agentwatch.marketplace.signing``
for the exact bytes). With ``--new`` a key pair is made first
(the private key is written to ``--key``, mode 0600, and must never be committed); the public key
(base64 of its 32 raw bytes) is printed, and written as ``publisher.json`` with ``--public``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from agentwatch.marketplace.signing import key_id, public_key_b64, sign_index


def _new_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        sys.exit(f"{path}: exists already; leave out --new to sign with it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def _load_key(path: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        sys.exit(f"{path}: not an Ed25519 private key")
    return key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path, help="the index file to sign in place")
    ap.add_argument("--key", type=Path, required=True, help="the PEM private key (kept out of the repository)")
    ap.add_argument("--new", action="store_true", help="make a new key pair at --key first")
    ap.add_argument("--public", type=Path, help="write the public key here as publisher.json")
    ap.add_argument("--publisher", default="agentwatch", help="the publisher's name in publisher.json")
    args = ap.parse_args()
    key = _new_key(args.key) if args.new else _load_key(args.key)
    pub = key.public_key()
    doc = json.loads(args.index.read_text(encoding="utf-8"))
    doc = sign_index(doc, key)  # each item, then the whole index (its "sequence" too)
    args.index.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.public is not None:
        body = {"publisher": args.publisher, "key_id": key_id(pub), "public_key": public_key_b64(pub)}
        args.public.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    print(f"signed {len(doc['items'])} items with key {key_id(pub)} (public key {public_key_b64(pub)})")


if __name__ == "__main__":
    main()
