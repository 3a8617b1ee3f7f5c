"""What a push carries, and its encryption for one subscription (RFC 8291, ``aes128gcm``).

A payload names the alert and nothing of its events: ``{"type", "alert_id", "title",
"severity"}`` (more alerts of one delivery than are pushed one by one: ``{"type": "alerts",
"count", "title", "severity"}``; a test push: ``{"type": "test", "title", "sent_at"}``). It travels through the
browser vendor's push service, so it holds what a lock screen may show and no more.
"""

from __future__ import annotations

import os
import time
from typing import Any

import http_ece
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

MAX_TITLE = 200
# One aes128gcm record: 4096 bytes in all (86 header, 16 tag, 1 delimiter); our payloads are small.
RECORD_SIZE = 4096


def _short(text: Any, limit: int) -> str:
    s = str(text or "")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def severity(alert: dict[str, Any]) -> int:
    try:
        return int(alert.get("severity", 0))
    except (TypeError, ValueError):
        return 0


def alert_payload(alert: dict[str, Any]) -> bytes:
    title = next((alert[k] for k in ("title", "rule_id") if alert.get(k)), "agentwatch alert")
    return orjson.dumps(
        {
            "type": "alert",
            "alert_id": str(alert.get("id", "")),
            "title": _short(title, MAX_TITLE),
            "severity": severity(alert),
        }
    )


def summary_payload(alerts: list[dict[str, Any]]) -> bytes:
    """The alerts of one delivery past those pushed one by one, as one notification."""
    n = len(alerts)
    return orjson.dumps(
        {
            "type": "alerts",
            "count": n,
            "title": f"{n} more alert{'s' if n != 1 else ''}",
            "severity": max((severity(a) for a in alerts), default=0),
        }
    )


def test_payload() -> bytes:
    return orjson.dumps({"type": "test", "title": "agentwatch test notification", "sent_at": int(time.time())})


def encrypt(payload: bytes, p256dh: bytes, auth: bytes) -> bytes:
    """``payload`` encrypted for the browser holding ``p256dh``/``auth``: a fresh sender key
    pair and salt per message; the header's key id is the sender's public key (http_ece puts
    it there when no key id is given)."""
    sender = ec.generate_private_key(ec.SECP256R1())
    return http_ece.encrypt(
        payload,
        salt=os.urandom(16),
        private_key=sender,
        dh=p256dh,
        auth_secret=auth,
        rs=RECORD_SIZE,
        version="aes128gcm",
    )
