"""Keys of detection state made of event fields, bounded in size.

Detector state is bounded by a count of entries, but its keys (a request id, a tool's name
and server, a correlation's group-by values) are event fields a client may make a megabyte
long: counted entries alone did not bound memory. Text longer than ``MAX_KEY_TEXT`` is kept
as its SHA-256 instead; two different texts stay apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable

MAX_KEY_TEXT = 256


def bounded(key: Hashable) -> Hashable:
    """``key`` with every text longer than ``MAX_KEY_TEXT`` replaced by its digest (a tuple
    key element by element)."""
    if isinstance(key, str):
        if len(key) <= MAX_KEY_TEXT:
            return key
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    if isinstance(key, tuple):
        for part in key:
            if isinstance(part, tuple) or (isinstance(part, str) and len(part) > MAX_KEY_TEXT):
                return tuple(bounded(p) for p in key)
        return key  # the usual key, short texts only, is its own bounded form: no copy
    return key
