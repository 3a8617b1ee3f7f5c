"""Masking secrets in the running configuration before the API or the CLI shows it.

Masked: every value under a key that names a credential (secret, password,
token, key, credential, dsn, routing key, webhook...), every ``SecretStr``
(pydantic already dumps those as stars), the user-info part of any URL, query
parameters with credential-like names, and the path of alert-output URLs (a
Slack/Teams/webhook URL is itself the credential).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_KEY = re.compile(
    r"(secret|passw|pwd|token|api_?key|apikey|private|credential|routing_key|integration_key|signing|cookie|"
    r"auth_header|^key$|_key$|dsn)",
    re.IGNORECASE,
)
URL_LIKE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
PATH_IS_SECRET = ("outputs", "webhook", "webhooks", "channels", "notify")


def mask_url(text: str, *, hide_path: bool = False) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_KEY.search(k) or hide_path else v) for k, v in pairs])
    path = parts.path
    if hide_path and path not in ("", "/"):
        path = "/" + MASK
    return urlunsplit((parts.scheme, netloc, path, query, "" if not parts.fragment else MASK))


def mask(value: Any, key: str = "", parents: tuple[str, ...] = ()) -> Any:
    """A deep copy of ``value`` with every secret replaced by ``***``."""
    if isinstance(value, dict):
        return {k: mask(v, str(k), (*parents, key)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key, parents) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if key and SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str) and URL_LIKE.match(value):
        hide = any(p in PATH_IS_SECRET for p in (*parents, key))
        return mask_url(value, hide_path=hide)
    if isinstance(value, str) and key.endswith("_url"):
        return MASK
    return value
