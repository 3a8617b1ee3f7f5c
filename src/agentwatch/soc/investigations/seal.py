"""The seal of a ledger's head: an HMAC-SHA256 over the investigation's id, its entry count and
its head hash, stored beside the head (``investigations.head_mac``) and moved with it.

The chain alone shows that entries were not changed one by one; whoever can write the database
can still rewrite a whole ledger and recompute every hash. The seal's key is not in the
database: it is derived from the server's token-signing secret (``auth.jwt_secret``, else the
key generated once into ``data_dir/jwt.key``, the one sessions are signed with), under a label
of its own, so every node of a deployment seals and checks alike and no second secret is kept.
Changing that secret (or losing ``jwt.key``) makes every sealed ledger fail to verify.

A head without a seal is ``unkeyed``, and its ledger does not verify: a missing seal is what
someone rewriting a ledger in the database would leave. The heads written before heads were
sealed get theirs from an operator (``agentwatch investigations seal-legacy``), once their chain
checks.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from pathlib import Path
from typing import Any

from agentwatch.soc.auth.tokens import load_secret

LABEL = b"agentwatch: investigation ledger heads, v1"
VALID, INVALID, UNKEYED = "valid", "invalid", "unkeyed"


def ledger_key(settings: Any) -> bytes:
    """The sealing key of this deployment (derived from the token-signing secret)."""
    secret = settings.auth.jwt_secret
    return _derived(secret.get_secret_value() if secret is not None else None, str(Path(settings.data_dir)))


@functools.lru_cache(maxsize=4)
def _derived(jwt_secret: str | None, data_dir: str) -> bytes:
    return hmac.new(load_secret(jwt_secret, Path(data_dir)), LABEL, hashlib.sha256).digest()


def head_mac(key: bytes, investigation_id: str, entries: int, head_hash: str) -> str:
    """The seal of the head (hex)."""
    message = f"{investigation_id}\n{entries}\n{head_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def state(key: bytes, investigation_id: str, entries: int, head_hash: str, stored: str | None) -> str:
    """Whether the stored seal holds for the head: ``valid``, ``invalid`` or ``unkeyed`` (none)."""
    if stored is None:
        return UNKEYED
    good = head_mac(key, investigation_id, entries, head_hash)
    return VALID if hmac.compare_digest(good, stored) else INVALID
