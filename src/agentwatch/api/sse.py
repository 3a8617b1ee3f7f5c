"""The ``data:`` line of a Server-Sent Events frame, safe for every line reader.

SSE ends a line only at CR or LF, but many clients split a stream with their language's
general line splitter (Python's ``str.splitlines``, and ``httpx``'s ``iter_lines`` on top of
it), which also ends lines at U+0085, U+2028 and U+2029. An event or a scanned banner
holding one of those would reach such a client cut in two, as JSON that no longer parses.

In JSON text these three can only stand inside strings, where their ``\\u`` escapes mean
the same, so the frame carries the escapes: the same JSON value for every reader.
"""

from __future__ import annotations

# The UTF-8 forms of U+0085, U+2028 and U+2029 (no other character's bytes contain them)
_SEPARATORS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def data_line(json_text: bytes) -> bytes:
    """``data: <json_text>`` with the separators above escaped, and no line end."""
    if b"\xc2\x85" in json_text or b"\xe2\x80" in json_text:
        for raw, escaped in _SEPARATORS:
            json_text = json_text.replace(raw, escaped)
    return b"data: " + json_text
