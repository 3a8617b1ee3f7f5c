"""The cursor of ``GET /sessions`` keyset paging: where the page before ended, opaque to clients.

A cursor is the list's sort key of the last row a page gave: a layout byte, last_seen_at as
the 8 bytes of the stored double (the value shown is rounded to the microsecond, and about a
third of the stored values differ from it, which would lose or repeat rows tied on that
time) and the id in UTF-8, base64url without padding. Opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

from agentwatch.events.model import EventError
from agentwatch.sessions.wire import MAX_ID, identifier

CURSOR_LAYOUT = 1
MAX_CURSOR = 4 * -(-(1 + 8 + 4 * MAX_ID) // 3)  # characters of the longest cursor (a 128-character id)


class BadCursor(ValueError):
    """A ``cursor`` that is not one this API gave; the message is the rule it breaks."""


def encode_cursor(last_seen_at: float, session_id: str) -> str:
    raw = struct.pack(">Bd", CURSOR_LAYOUT, last_seen_at) + session_id.encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> tuple[float, str]:
    """The ``(last_seen_at, id)`` a cursor holds; raises BadCursor naming what is wrong."""
    if not text:
        raise BadCursor("must not be empty")
    if len(text) > MAX_CURSOR:
        raise BadCursor(f"longer than {MAX_CURSOR} characters")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise BadCursor("must be base64url, as given in next_cursor") from None
    if len(raw) < 10:
        raise BadCursor("not a cursor given in next_cursor (too short)")
    if raw[0] != CURSOR_LAYOUT:
        raise BadCursor("not a cursor given in next_cursor (unknown layout)")
    (seen,) = struct.unpack(">d", raw[1:9])
    if not math.isfinite(seen):
        raise BadCursor("not a cursor given in next_cursor (its time is not finite)")
    try:
        session_id = raw[9:].decode()
        identifier(session_id, "id")
    except UnicodeDecodeError:
        raise BadCursor("not a cursor given in next_cursor (its id is not UTF-8)") from None
    except EventError as exc:
        raise BadCursor(f"not a cursor given in next_cursor (its id {exc.rule})") from None
    if encode_cursor(seen, session_id) != text:  # padding or stray bits: only the spelling we give
        raise BadCursor("not a cursor given in next_cursor (not in its canonical form)")
    return seen, session_id
