"""Secrets taken out of the rows a target answers, before the caller sees them.

A SIEM's row (or an event in the local store) can hold what an agent leaked: a bearer token in a
logged request, a ``password=`` in a command line, a provider API key. Every string value of a
row goes through the masking the logs and the LLM prompts use (:func:`agentwatch.masking.mask_text`:
credential headers, URL user-info and credential query parameters, ``name=value`` credentials,
known token shapes, private key blocks), and a string under a column whose name says credential
(``password``, ``api_key``, ``token``...: :data:`agentwatch.masking.SECRET_KEY`) is masked
whole. Numbers, booleans and nulls are kept.

The work per row is bounded: a string is scanned up to :data:`MAX_CELL_CHARS` and cut there
(nothing past the cut is shown, since it was not scanned), a row's values are walked down to
:data:`MAX_DEPTH` levels and up to :data:`MAX_CELLS` values, and whatever lies past those bounds
is shown as ``***``.
"""

from __future__ import annotations

from typing import Any

from agentwatch.masking import MASK, SECRET_KEY, mask_text

MAX_CELL_CHARS = 65_536
MAX_CELLS = 1_000
MAX_DEPTH = 6
CUT = " [cut]"


class _Budget:
    def __init__(self) -> None:
        self.cells = MAX_CELLS

    def take(self) -> bool:
        self.cells -= 1
        return self.cells >= 0


def _text(value: str) -> str:
    if len(value) > MAX_CELL_CHARS:
        return mask_text(value[:MAX_CELL_CHARS]) + CUT
    return mask_text(value)


def _value(value: Any, key: str, depth: int, budget: _Budget) -> Any:
    if not budget.take() or depth > MAX_DEPTH:
        return MASK
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return MASK if key and SECRET_KEY.search(key) else _text(value)
    if isinstance(value, dict):
        return {k: _value(v, str(k), depth + 1, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v, key, depth + 1, budget) for v in value]
    return _value(str(value), key, depth, budget)


def redact_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with its secrets masked (``***``)."""
    budget = _Budget()
    return {k: _value(v, str(k), 1, budget) for k, v in row.items()}
