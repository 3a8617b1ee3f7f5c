"""Text a step writes (a case title, a comment, a webhook message) with the alert's fields put
in: ``{alert_id}``, ``{alert_title}``, ``{alert_severity}``, ``{alert_status}``, ``{rule_id}``
and ``{alert_type}``. Only these names are replaced (no format language, no attribute access);
any other brace is kept as written."""

from __future__ import annotations

import re
from typing import Any

PLACEHOLDER = re.compile(r"\{(alert_id|alert_title|alert_severity|alert_status|rule_id|alert_type)\}")
FIELDS = {
    "alert_id": "id",
    "alert_title": "title",
    "alert_severity": "severity",
    "alert_status": "status",
    "rule_id": "rule_id",
    "alert_type": "type",
}


def render(text: str, alert: dict[str, Any], max_len: int) -> str:
    """``text`` with the placeholders filled from ``alert``, cut to ``max_len`` characters."""
    return PLACEHOLDER.sub(lambda m: str(alert.get(FIELDS[m.group(1)], "")), text)[:max_len]
