"""A per-event view that reads each canonical field once and caches its string forms.

Every rule that looks at ``process.cmdline`` in one event shares one lookup, one
stringification and one lower-casing: the matcher's hot path is dictionary hits.
"""

from __future__ import annotations

from typing import Any

import orjson

from agentwatch.detect.fieldmap.accessors import MISSING
from agentwatch.detect.fieldmap.pipelines import FieldRef
from agentwatch.events.model import Event

MAX_VALUES = 256  # list elements considered per field
_UNSET = object()


def _str_forms(value: Any) -> tuple[str, ...]:
    if value is MISSING or value is None:
        return ()
    t = type(value)
    if t is str:
        return (value,)
    if t is bool:
        return ("true" if value else "false",)
    if t is int or t is float:
        return (str(value),)
    if t is list or t is tuple:
        out: list[str] = []
        for item in value[:MAX_VALUES]:
            out.extend(_str_forms(item))
        return tuple(out)
    if t is dict:
        try:
            return (orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode(),)
        except TypeError:
            return (str(value),)
    return (str(value),)


class EventView:
    """Cached field values of one event: ``raw``, ``strs`` (as is) and ``low`` (lower-cased)."""

    __slots__ = ("event", "_raw", "_strs", "_low")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._raw: dict[str, Any] = {}
        self._strs: dict[str, tuple[str, ...]] = {}
        self._low: dict[str, tuple[str, ...]] = {}

    def prime(self, refs: list[FieldRef]) -> list[tuple[str, ...]]:
        """Read, stringify and lower-case ``refs`` once; returns their lower-cased forms."""
        event, raw, strs, low = self.event, self._raw, self._strs, self._low
        out: list[tuple[str, ...]] = []
        for ref in refs:
            key = ref.key
            forms = low.get(key)
            if forms is None:
                value = ref.get(event)
                raw[key] = value
                if type(value) is str:
                    strs[key] = (value,)
                    forms = (value.lower(),)
                else:
                    original = _str_forms(value)
                    strs[key] = original
                    forms = tuple(x.lower() for x in original)
                low[key] = forms
            out.append(forms)
        return out

    def haystack(self, refs: list[FieldRef]) -> str:
        """Lower-cased values of ``refs`` joined by newlines."""
        return "\n".join(x for forms in self.prime(refs) for x in forms)

    def raw(self, ref: FieldRef) -> Any:
        value = self._raw.get(ref.key, _UNSET)
        if value is _UNSET:
            value = ref.get(self.event)
            self._raw[ref.key] = value
        return value

    def strs(self, ref: FieldRef) -> tuple[str, ...]:
        forms = self._strs.get(ref.key)
        if forms is None:
            forms = _str_forms(self.raw(ref))
            self._strs[ref.key] = forms
        return forms

    def low(self, ref: FieldRef) -> tuple[str, ...]:
        forms = self._low.get(ref.key)
        if forms is None:
            forms = tuple(s.lower() for s in self.strs(ref))
            self._low[ref.key] = forms
        return forms
