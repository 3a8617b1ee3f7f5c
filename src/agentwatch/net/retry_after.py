"""Reading a server's ``Retry-After``: the one parser the SDK, the replay command and the alert
outputs share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

SECONDS_RE = re.compile(r"[0-9]{1,10}")  # delta-seconds; longer is no wait anyone means


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait (delta-seconds or an HTTP date, a past date as 0), or
    None when it named no wait or one that cannot be read."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if SECONDS_RE.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
