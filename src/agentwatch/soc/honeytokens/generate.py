"""Making the secret of a honeytoken, and why only digests of it are kept.

Every value is drawn from :mod:`secrets`; nobody chooses it, so two tokens never collide and
no value can be guessed from another. Kinds and their styles:

- ``api_key``: a fake key shaped like a real provider's: ``openai`` (``sk-proj-`` + 64),
  ``anthropic`` (``sk-ant-api03-`` + 86 + ``AA``), ``aws`` (an ``AKIA`` access key id and a
  40-character secret key, given as ``id:secret``), ``github`` (``ghp_`` + 36), ``generic``
  (40 characters).
- ``url``: ``<public_url>/api/v1/honeytokens/track/<32 characters>``; fetching it trips it.
- ``credential``: a user name (chosen, or ``svc-`` + 6 letters) and a 24-character password.
- ``text``: a marker of 32 characters, after an optional chosen prefix and a ``-``.

**Storage.** The random parts of a value (its *needles*: each a maximal run of letters and
digits, at least 20 long and holding at least 80 random bits) are stored only as SHA-256
digests, beside a short hint (the style's fixed prefix and four characters) for people. The
full value is answered once, by the request creating the token. Matching in traffic still
works without the value: the scanner (:mod:`.scan`) cuts every run of letters and digits out
of an event and looks up the digest of each run whose length is a needle length. A hash of a
value that random cannot be reversed, so a copy of the database or of a node's memory does not
let anyone list the canaries and avoid them (which a stored plain value would). The cost: a
canary is found only where it stands as a whole run (``key=sk-proj-X…`` or ``"X…"``, not
glued to other letters, nor base64- or otherwise re-encoded).
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass, field

BASE62 = string.ascii_letters + string.digits
BASE32 = string.ascii_uppercase + "234567"
LOWER = string.ascii_lowercase
KINDS = ("api_key", "url", "credential", "text")
API_KEY_STYLES = ("openai", "anthropic", "aws", "github", "generic")
STYLES: dict[str, tuple[str, ...]] = {
    "api_key": API_KEY_STYLES,
    "url": ("track",),
    "credential": ("password",),
    "text": ("marker",),
}
DEFAULT_STYLE = {"api_key": "openai", "url": "track", "credential": "password", "text": "marker"}
TRACK_ID_LEN = 32
TRACK_PATH = "/api/v1/honeytokens/track/"


def _draw(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def digest(needle: str) -> str:
    return hashlib.sha256(needle.encode()).hexdigest()


@dataclass
class Secret:
    """A new token's value (shown once), its parts, and what is stored of it."""

    value: str
    needles: list[str]
    hint: str
    parts: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    track_id: str | None = None

    @property
    def digests(self) -> list[str]:
        return [digest(n) for n in self.needles]


def _api_key(style: str) -> Secret:
    if style == "aws":
        key_id = "AKIA" + _draw(BASE32, 16)  # 80 random bits in the id, 238 in the secret key
        secret_key = _draw(BASE62, 40)
        parts = {"access_key_id": key_id, "secret_access_key": secret_key}
        return Secret(f"{key_id}:{secret_key}", [key_id, secret_key], key_id[:8] + "…", parts)
    prefix, body, suffix = {
        "openai": ("sk-proj-", 64, ""),
        "anthropic": ("sk-ant-api03-", 86, "AA"),
        "github": ("ghp_", 36, ""),
        "generic": ("", 40, ""),
    }[style]
    run = _draw(BASE62, body) + suffix
    return Secret(prefix + run, [run], prefix + run[:4] + "…")


def make(kind: str, style: str, *, base_url: str = "", username: str | None = None, prefix: str = "") -> Secret:
    """A new secret of ``kind`` and ``style`` (both already checked against :data:`STYLES`)."""
    if kind == "api_key":
        return _api_key(style)
    if kind == "url":
        track_id = _draw(BASE62, TRACK_ID_LEN)
        url = f"{base_url.rstrip('/')}{TRACK_PATH}{track_id}"
        hint = f"{base_url.rstrip('/')}{TRACK_PATH}{track_id[:4]}…"
        return Secret(url, [track_id], hint, {"url": url}, track_id=track_id)
    if kind == "credential":
        user = username or "svc-" + _draw(LOWER, 6)
        password = _draw(BASE62, 24)
        parts = {"username": user, "password": password}
        return Secret(f"{user}:{password}", [password], f"{user}:{password[:4]}…", parts, username=user)
    marker = _draw(BASE62, 32)
    value = f"{prefix}-{marker}" if prefix else marker
    return Secret(value, [marker], (f"{prefix}-" if prefix else "") + marker[:4] + "…")
