"""Values for typed columns, taken from event bodies that the JSON parser allowed."""

from __future__ import annotations

from typing import Any

from agentwatch.events.model import INT64_MAX, INT64_MIN


def int64(v: Any) -> int | None:
    """An integer column's value: None unless an int both stores can hold (the body keeps the original).

    JSON allows any integer; SQLite and PostgreSQL BIGINT hold signed 64 bits, and one value
    past that would fail the whole commit.
    """
    return v if isinstance(v, int) and not isinstance(v, bool) and INT64_MIN <= v <= INT64_MAX else None
