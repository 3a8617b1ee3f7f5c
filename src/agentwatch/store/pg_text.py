"""Text for PostgreSQL: the NUL character becomes U+FFFD on its way in.

PostgreSQL refuses U+0000 in text values, where SQLite and JSON carry it. Events do carry
it (a tool's output, a file path built for a null-byte injection), and so can any query
parameter a client sends (``/api/events/a%00b``); without this, each such value was an
error from the database and a 500. Every string bound to a statement, a batched statement
or a COPY on an agentwatch connection goes through these dumpers instead.

Only the indexed copies change: an event's JSON body stores the character escaped
(``\\u0000``) and gives it back exactly. A lookup by a value holding NUL is changed the same
way as the stored value was, so it finds what was stored from it.
"""

from __future__ import annotations

from typing import Any

from psycopg import adapters
from psycopg.adapt import Dumper, PyFormat

NUL = "\x00"
REPLACEMENT = "\ufffd"


def _nul_safe(base: type[Dumper]) -> type[Dumper]:
    """A dumper that hands ``base`` (psycopg's own, possibly compiled) the string without NUL."""

    class NulSafeStr(Dumper):
        format = base.format
        oid = base.oid

        def __init__(self, cls: type, context: Any = None) -> None:
            super().__init__(cls, context)
            self._inner = base(cls, context)

        def dump(self, obj: str) -> Any:
            return self._inner.dump(obj.replace(NUL, REPLACEMENT) if NUL in obj else obj)

    NulSafeStr.__name__ = f"NulSafe{base.__name__}"
    return NulSafeStr


# Binary first: the dumper registered last is the default, and psycopg's default is text.
_DUMPERS = [_nul_safe(adapters.get_dumper(str, fmt)) for fmt in (PyFormat.BINARY, PyFormat.TEXT)]


def install(dbapi_conn: Any) -> None:
    """Use the NUL-safe string dumpers on this psycopg connection."""
    for dumper in _DUMPERS:
        dbapi_conn.adapters.register_dumper(str, dumper)
