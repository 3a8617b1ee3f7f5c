"""Redaction of captured content before it is stored or streamed.

Modes (``capture.redaction``):

- ``full``: content is kept as sent; findings are still computed (the guard uses them).
- ``safe`` (default): any string holding a secret or PII is replaced by an OISP
  ``{"$redacted": {...}}`` object carrying the findings, the original length, a hash and a
  preview in which every match is masked. Strings without findings are kept. A secret
  therefore never reaches the store or a live stream.
- ``minimal``: every content string is replaced by a ``$redacted`` object with length and
  hash only (no preview), whatever it holds.

The patterns are fixed, anchored on literal prefixes and use bounded repetition, so they
run in linear time on any input.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from agentwatch.secret_shapes import TOKEN_SHAPES

Mode = Literal["full", "safe", "minimal"]
PREVIEW_CHARS = 100
MAX_SCAN_CHARS = 2 * 1024 * 1024  # longer strings are scanned on their first 2 MiB and redacted whole
MAX_JSON_DEPTH = 64  # levels of nested arrays and objects mask_json walks (the outermost one is level 1)
# Inline media (an image, a PDF) travels as base64 text. Scanning 2 MiB of it for secrets takes
# about half a second per request, and random base64 now and then takes a key's shape (a
# false block), so mask_json does not look inside such a payload (a secret in it is encoded,
# where no pattern would see it anyway). Short strings are scanned as usual.
MIN_MEDIA_CHARS = 1024
_BASE64_RE = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_DATA_URL_RE = re.compile(r"data:[\w.+-]{1,127}/[\w.+-]{1,127}(?:;[\w.+-]{1,64}=[\w.+-]{1,64}){0,4};base64,")
MEDIA_TYPE_KEYS = frozenset({"media_type", "mime_type", "mimeType"})

# (type, kind, pattern). kind "secret" or "pii".
_PATTERNS: list[tuple[str, str, str]] = [
    ("private_key", "secret", r"-----BEGIN (?:[A-Z]{1,20} ){0,3}PRIVATE KEY-----"),
    *((type_, "secret", pattern) for type_, _triggers, pattern in TOKEN_SHAPES),
    (
        "credential_assignment",
        "secret",
        r"(?i)\b(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token)"
        r"[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?[^\s\"',;]{8,256}",
    ),
    ("email", "pii", r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}\b"),
    ("us_ssn", "pii", r"\b\d{3}-\d{2}-\d{4}\b"),
    ("phone", "pii", r"(?<![\w.])(?:\+\d{1,3}[ .\-]?)?\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}\b"),
    ("credit_card", "pii", r"\b(?:\d[ \-]?){12,18}\d\b"),
]
_COMPILED = [(t, k, re.compile(p)) for t, k, p in _PATTERNS]
KINDS = {t: k for t, k, _ in _PATTERNS}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Match:
    type: str
    kind: str  # "secret" | "pii"
    start: int
    end: int


def scan(text: str) -> list[Match]:
    """Every secret / PII match in ``text``, non-overlapping, earliest and longest first."""
    if not text:
        return []
    window = text[:MAX_SCAN_CHARS]
    found: list[Match] = []
    for type_, kind, rx in _COMPILED:
        for m in rx.finditer(window):
            if type_ == "credit_card":
                digits = re.sub(r"[ \-]", "", m.group(0))
                if not (13 <= len(digits) <= 19 and _luhn(digits)):
                    continue
            found.append(Match(type_, kind, m.start(), m.end()))
    found.sort(key=lambda x: (x.start, -(x.end - x.start)))
    out: list[Match] = []
    last_end = -1
    for m in found:
        if m.start >= last_end:
            out.append(m)
            last_end = m.end
    return out


def mask(text: str, matches: list[Match] | None = None) -> str:
    """``text`` with every match replaced by ``[REDACTED:<type>]``."""
    matches = scan(text) if matches is None else matches
    if not matches:
        return text
    parts: list[str] = []
    pos = 0
    for m in matches:
        parts.append(text[pos : m.start])
        parts.append(f"[REDACTED:{m.type}]")
        pos = m.end
    parts.append(text[pos:])
    masked = "".join(parts)
    if len(text) > MAX_SCAN_CHARS:  # the unscanned tail may hold anything: drop it
        masked = masked[:MAX_SCAN_CHARS]
    return masked


def content_hash(text: str | bytes) -> str:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def findings_of(matches: list[Match]) -> list[dict[str, Any]]:
    counts = Counter(m.type for m in matches)
    return [{"type": t, "count": c} for t, c in sorted(counts.items())]


@dataclass
class Report:
    """What redaction found across one event (merged over every string it looked at)."""

    counts: Counter[str]
    # why part of what was looked at could not be read (too deep, not parseable): nothing is
    # known about that part, so the guard treats it as it would a secret
    uninspected: str | None = None

    @classmethod
    def empty(cls) -> Report:
        return cls(Counter())

    def add(self, matches: list[Match]) -> None:
        self.counts.update(m.type for m in matches)

    @property
    def secrets(self) -> list[str]:
        return sorted(t for t in self.counts if KINDS.get(t) == "secret")

    @property
    def pii(self) -> list[str]:
        return sorted(t for t in self.counts if KINDS.get(t) == "pii")

    def findings(self) -> list[dict[str, Any]]:
        return [{"type": t, "count": c} for t, c in sorted(self.counts.items())]


class Redactor:
    """Applies one mode to strings and JSON values, collecting findings in a :class:`Report`."""

    def __init__(self, mode: Mode, report: Report | None = None) -> None:
        self.mode = mode
        self.report = report or Report.empty()

    def text(self, value: str) -> str | dict[str, Any]:
        matches = scan(value)
        self.report.add(matches)
        if self.mode == "full":
            return value
        if self.mode == "minimal":
            return {
                "$redacted": {
                    "reason": "policy",
                    "original_length": len(value),
                    "hash": content_hash(value),
                    "redaction_profile": "minimal",
                    **({"findings": findings_of(matches)} if matches else {}),
                }
            }
        if not matches and len(value) <= MAX_SCAN_CHARS:
            return value
        has_secret = any(m.kind == "secret" for m in matches)
        detector = "regex_" + matches[0].type if matches else "size_limit"
        return {
            "$redacted": {
                "reason": "secret_detected" if has_secret else ("pii_detected" if matches else "policy"),
                "detector": detector,
                "original_length": len(value),
                "hash": content_hash(value),
                "preview": mask(value, matches)[:PREVIEW_CHARS],
                "redaction_profile": "safe",
                "findings": findings_of(matches),
            }
        }

    def value(self, value: Any, depth: int = 0) -> Any:
        """Redact every string inside a JSON value (tool arguments, tool results)."""
        if isinstance(value, str):
            return self.text(value)
        if depth > 32:
            return {"$redacted": {"reason": "policy", "detector": "depth_limit"}}
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                out[self.key(k, value, out)] = self.value(v, depth + 1)
            return out
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        return value

    def key(self, key: str, source: dict[str, Any], out: dict[str, Any]) -> str:
        """An object key with its secrets and PII masked (a key can carry one: ``{"sk-...": 1}``);
        keys stay text, so a masked key is the masked string, made unique among its siblings."""
        if self.mode == "full" or not isinstance(key, str):
            return key
        matches = scan(key)
        if not matches:
            return key
        self.report.add(matches)
        return _unique(mask(key, matches), source, out)


class TooDeep(ValueError):
    """A JSON value nested deeper than :data:`MAX_JSON_DEPTH`: not walked, so not known to be clean."""


def mask_json(value: Any, report: Report | None = None, depth: int = 0) -> tuple[Any, int]:
    """Every string and key in ``value`` with its secrets masked; returns (new value, number masked).

    Used by the guard to find secrets anywhere in a request and, with its ``redact`` action, to
    clean the request before it is forwarded. Only secrets are masked (PII is left to the
    provider's own policy); their types are added to ``report``. An array or object nested
    deeper than :data:`MAX_JSON_DEPTH` levels raises :class:`TooDeep` rather than being passed
    on unread: the caller refuses such a request (it fails closed).
    """
    if isinstance(value, str):
        if len(value) >= MIN_MEDIA_CHARS and _data_url(value):
            return value, 0
        matches = [m for m in scan(value) if m.kind == "secret"]
        if report is not None:
            report.add(matches)
        return (mask(value, matches), len(matches)) if matches else (value, 0)
    if not isinstance(value, dict | list):
        return value, 0
    if depth >= MAX_JSON_DEPTH:
        raise TooDeep(f"arrays and objects nested deeper than {MAX_JSON_DEPTH} levels")
    total = 0
    if isinstance(value, list):
        items = []
        for v in value:
            nv, n = mask_json(v, report, depth + 1)
            items.append(nv)
            total += n
        return items, total
    out: dict[str, Any] = {}
    for k, v in value.items():
        key_matches = [m for m in scan(k) if m.kind == "secret"] if isinstance(k, str) else []
        if key_matches:
            k = _unique(mask(k, key_matches), value, out)  # the key as forwarded
            total += len(key_matches)
            if report is not None:
                report.add(key_matches)
        if k == "data" and _media_payload(v, value):
            out[k], n = v, 0
        else:
            out[k], n = mask_json(v, report, depth + 1)
        total += n
    return out, total


def _data_url(text: str) -> bool:
    """A ``data:<type>;base64,<payload>`` URL (how OpenAI-style requests inline an image)."""
    head = _DATA_URL_RE.match(text)
    return head is not None and _BASE64_RE.fullmatch(text, head.end()) is not None


def _media_payload(value: Any, parent: dict[str, Any]) -> bool:
    """The ``data`` of an object that also names its media type (Anthropic's and Gemini's inline
    media), when it is long base64 text."""
    return (
        isinstance(value, str)
        and len(value) >= MIN_MEDIA_CHARS
        and not MEDIA_TYPE_KEYS.isdisjoint(parent)
        and _BASE64_RE.fullmatch(value) is not None
    )


def _unique(masked: str, source: dict[str, Any], out: dict[str, Any]) -> str:
    """``masked``, suffixed when a key of the object (as sent, or as already masked) reads the same."""
    key, n = masked, 1
    while key in source or key in out:
        n += 1
        key = f"{masked}#{n}"
    return key
