"""Masking secrets before the API, the CLI or a log line shows them.

Configuration (:func:`mask`): every value under a key that names a credential (secret,
password, token, key, credential, dsn, routing key, webhook...), every ``SecretStr``
(pydantic already dumps those as stars), the user-info part of any URL, query
parameters with credential-like names, and the path of alert-output URLs (a
Slack/Teams/webhook URL is itself the credential).

Log lines (:func:`scrub`, :func:`mask_text`): values under credential keys, and the known
shapes of secrets wherever they appear in the text, since a log line (a request line with
``?access_token=``, a header the WebSocket library prints at DEBUG, a database error quoting
the refused row) is not a document whose keys say what is secret.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentwatch.secret_shapes import TOKEN_SHAPES

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


# -- free text: log lines and the exception text a log line carries ------------------------
#
# A log line is not a settings document: what it holds is not known by key, so the known
# shapes of secrets are masked wherever they appear. Every pattern is anchored on a literal
# and bounded, so masking stays linear in the length of the text.

_CREDENTIAL_HEADERS = r"(?:proxy-)?authorization|set-cookie|cookie|x-api-key|x-agentwatch-key|x-goog-api-key|api-key"
_QUERY_NAME = (  # a query parameter whose name ends in a credential word: ?access_token=, &key=, &sig=
    r"[\w.\-\[\]]{0,64}?(?:token|key|secret|password|passwd|pwd|sig|signature|auth|authorization|credentials?)"
)
# a name ending in a credential word, then "=": password=, api_key=, token=, session_token=
_ASSIGNED = (
    r"[\w\-]{0,40}?(?:password|passwd|pwd|passphrase|secret|api_?key|token|routing_key|private_key|credentials?)"
)
_HEADER_TRIGGERS = ("authorization", "cookie", "api-key", "agentwatch-key")
_ASSIGNED_TRIGGERS = ("pass", "pwd", "secret", "key", "token", "credential")
# (triggers, pattern, replacement): a pattern runs only on text holding one of its triggers
# (lower case), which keeps an ordinary log line to a few substring searches.
_TEXT_RULES: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    # a failed statement's bound values (SQLAlchemy) and a refused row or key (PostgreSQL's DETAIL)
    (("[parameters: ",), re.compile(r"\[parameters: [^\n]*"), "[parameters: ***]"),
    (("failing row contains",), re.compile(r"(Failing row contains \()[^\n]*"), r"\1***)"),
    (("key (",), re.compile(r"(\bKey \([^()\n]{1,512}\)=\()[^\n]*"), r"\1***)"),
    # a WebSocket frame (logged at DEBUG by the websockets library): the payload is data
    (("< ", "> "), re.compile(r"^([<>] (?:TEXT|BINARY|CONT)) .*( \[[^\[\]\n]*\])$", re.MULTILINE), r"\1 ***\2"),
    # credential headers, as "Name: value" lines and as httpcore's (b'name', b'value') pairs
    (_HEADER_TRIGGERS, re.compile(rf"(?i)\b({_CREDENTIAL_HEADERS})(['\"]?[ \t]*:[ \t]*)[^\n]+"), r"\1\2***"),
    (_HEADER_TRIGGERS, re.compile(rf"(?i)(b'(?:{_CREDENTIAL_HEADERS})', b')[^']*'"), r"\1***'"),
    (("bearer", "basic"), re.compile(r"(?i)\b(bearer|basic)([ \t]+)[\w.~+/=\-]{8,}"), r"\1\2***"),
    # URLs: user-info, credential query parameters, chat webhooks whose path is the credential
    (("@",), re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)[^\s/?#@'\"<>]{1,256}@"), r"\1***@"),
    (("=",), re.compile(rf"(?i)([?&;]{_QUERY_NAME}=)[^&\s#'\"<>]*"), r"\1***"),
    (
        ("hooks.slack.com",),
        re.compile(r"(?i)\b(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s'\"<>]+"),
        r"\1***",
    ),
    (("webhook.office.com",), re.compile(r"(?i)\b(webhook\.office\.com/)[^\s'\"<>]+"), r"\1***"),
    (("discord",), re.compile(r"(?i)\b(discord(?:app)?\.com/api/webhooks/)[^\s'\"<>]+"), r"\1***"),
    # password=..., "api_key": "..."
    (_ASSIGNED_TRIGGERS, re.compile(rf"(?i)\b({_ASSIGNED})([ \t]{{0,4}}=[ \t]{{0,4}})[^\s&'\",;]+"), r"\1\2***"),
    (
        _ASSIGNED_TRIGGERS,
        re.compile(rf"(?i)(['\"](?:{_ASSIGNED})['\"][ \t]{{0,4}}:[ \t]{{0,4}}['\"]?)[^\s'\",;}}]+"),
        r"\1***",
    ),
    # tokens by shape: agentwatch's own (the key prefix is not secret), then JWTs and provider keys
    (("aw_",), re.compile(r"\b(aw_[0-9a-f]{12}_)[\w\-]+"), r"\1***"),
    (("awr_",), re.compile(r"\b(awr_)[\w\-]+"), r"\1***"),
    *((triggers, re.compile(pattern), MASK) for _type, triggers, pattern in TOKEN_SHAPES),
    (
        ("private key-----",),
        re.compile(
            r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----.*?(?:-----END [A-Z ]{0,40}PRIVATE KEY-----|\Z)", re.DOTALL
        ),
        "-----BEGIN PRIVATE KEY-----" + MASK,
    ),
]


def mask_text(text: str) -> str:
    """``text`` with every known shape of a secret replaced by ``***`` (the text of a log line)."""
    lowered = text.lower()
    for triggers, pattern, replacement in _TEXT_RULES:
        if any(t in lowered for t in triggers):
            text = pattern.sub(replacement, text)
    return text


MAX_DEPTH = 8


def scrub(value: Any, key: str = "", depth: int = 0) -> Any:
    """A log record's fields with secrets masked: every value under a key naming a credential,
    and the known shapes of secrets inside every string. Objects the renderer would print by
    ``repr`` are masked as that text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if key and SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if depth < MAX_DEPTH:
        if isinstance(value, dict):
            return {k: scrub(v, str(k), depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [scrub(v, key, depth + 1) for v in value]
    return mask_text(repr(value))
