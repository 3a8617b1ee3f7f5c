"""Reading OCSF fields by their dotted path, each read checking its type and size.

The OCSF codec reads only the fields it maps; each read here raises
:class:`~agentwatch.events.model.EventError` naming the field by its OCSF path
(``dst_endpoint.port``, ``actor.user.name``) and the rule it broke, so a sender learns which
field of its own format was wrong, not which field of the canonical event it became.
Absent and ``null`` fields read as None (OCSF leaves out what it does not know).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from agentwatch.events.model import CONTROL_RE, EventError

MAX_TEXT = 4096  # a name, a path, a command line: longer is not a value an entity can hold


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _get(doc: dict[str, Any], path: str, leaf_too: bool = False) -> Any:
    """The value at ``path``: None when a step is absent or null; every step before the last
    (and the last with ``leaf_too``) must be an object."""
    steps = _steps(path)
    node: Any = doc
    for depth, step in enumerate(steps[:-1], 1):
        node = node.get(step)
        if node is None:
            return None
        if not isinstance(node, dict):
            raise EventError(".".join(steps[:depth]), "must be an object")
    value = node.get(steps[-1])
    if leaf_too and value is not None and not isinstance(value, dict):
        raise EventError(path, "must be an object")
    return value


def obj(doc: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The object at ``path`` (dotted, from ``doc``); None when a step is absent or null."""
    return _get(doc, path, leaf_too=True)


def text(doc: dict[str, Any], path: str, limit: int = MAX_TEXT) -> str | None:
    """A string field: at most ``limit`` characters, without control characters."""
    value = _get(doc, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(path, "must be a string")
    if len(value) > limit:
        raise EventError(path, f"longer than {limit} characters")
    if CONTROL_RE.search(value) is not None:
        raise EventError(path, "must not contain control characters")
    return value or None


def free_text(doc: dict[str, Any], path: str, limit: int = MAX_TEXT) -> str | None:
    """A message: newlines and tabs allowed, NUL not (PostgreSQL stores no NUL in text)."""
    value = _get(doc, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(path, "must be a string")
    if "\x00" in value:
        raise EventError(path, "must not contain NUL characters")
    return value[:limit] or None


def integer(doc: dict[str, Any], path: str, low: int, high: int) -> int | None:
    """An integer field (a JSON integer, not a boolean nor a fraction) within ``low``..``high``."""
    value = _get(doc, path)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(path, "must be an integer")
    if not low <= value <= high:
        raise EventError(path, f"must be between {low} and {high}")
    return value


def object_list(doc: dict[str, Any], path: str, limit: int) -> list[dict[str, Any]]:
    """A list of objects, at most ``limit`` of them read (the rest stay in the original)."""
    value = _get(doc, path)
    if value is None:
        return []
    if not isinstance(value, list):
        raise EventError(path, "must be a list")
    for i, item in enumerate(value[:limit]):
        if not isinstance(item, dict):
            raise EventError(f"{path}[{i}]", "must be an object")
    return value[:limit]
