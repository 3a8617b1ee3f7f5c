"""Rules for the short free text analysts write (names, tags, titles) and the ids they quote,
shared by the alert and case routes so that one rule is one rule everywhere."""

from __future__ import annotations

import re
import unicodedata

from agentwatch.alerts.model import MAX_ASSIGNEE

ALERT_ID_RE = re.compile(r"[0-9A-Za-z-]{1,64}")  # fullmatch: "$" would let a final newline through

# Refused anywhere in a name: C0 and C1 controls (a NUL, a terminal escape), line and paragraph
# separators (they break a log line as a newline does) and the bidi embeddings, overrides and
# isolates (they show a name other than the one stored).
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The bidi marks LRM, RLM and ALM, which titles refuse too (they reorder text as the others do).
BIDI_MARKS = re.compile("[\u061c\u200e\u200f]")


def printable_name(value: str | None) -> str | None:
    """A name as analysts give them (an assignee, a tag: a name, an e-mail address,
    ``user:<id>``): printable text without surrounding blanks; None passes."""
    if value is not None and (value != value.strip() or UNPRINTABLE.search(value)):
        raise ValueError("must be printable text without control characters or surrounding blanks")
    return value


def assignee_name(value: str | None) -> str | None:
    """An assignee as stored and as searched for: a printable name in Unicode's composed form
    (NFC), so that an accented name typed as one code point or as a letter and a combining
    accent is the same analyst."""
    if value is None:
        return None
    printable_name(value)
    composed = unicodedata.normalize("NFC", value)
    if len(composed) > MAX_ASSIGNEE:  # a few characters compose to two (U+0344), and the column holds 128
        raise ValueError(f"must be at most {MAX_ASSIGNEE} characters once composed (Unicode NFC)")
    return composed


# Characters that show nothing on their own: blanks and the format characters (zero-width space
# and joiners, word joiner, soft hyphen, byte order mark).
INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def shows_nothing(value: str) -> bool:
    return all(ch.isspace() or unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in value)


def printable_title(value: str) -> str:
    """A title: something visible, and none of the characters names refuse nor the bidi marks."""
    if shows_nothing(value):
        raise ValueError("must not be blank (nothing visible)")
    if UNPRINTABLE.search(value) or BIDI_MARKS.search(value):
        raise ValueError("must be printable text without control characters")
    return value
