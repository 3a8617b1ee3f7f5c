"""The headers every dashboard response carries: a strict Content-Security-Policy and friends.

The policy allows scripts, styles and connections from the server's own origin only, no
inline script or style, no plugins, no ``<base>``, no framing, no native form submission.
The live page's WebSocket is same-origin; CSP Level 3 browsers count ``ws:``/``wss:`` to the
page's own host as ``'self'``, older ones need the host named, so ``connect-src`` names it
when the request's ``Host`` is a plain host[:port] (anything else is left out, never echoed).
"""

from __future__ import annotations

import re

BASE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
)
# a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?")


def content_security_policy(host: str | None) -> str:
    connect = "connect-src 'self'"
    if host and len(host) <= 262 and HOST_RE.fullmatch(host):
        host = host.lower()
        connect += f" ws://{host} wss://{host}"
    return "; ".join([*BASE_POLICY, connect])


def security_headers(host: str | None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
