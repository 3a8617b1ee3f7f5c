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


def str_forms(value: Any) -> tuple[str, ...]:
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
            out.extend(str_forms(item))
        return tuple(out)
    if t is dict:
        try:
            return (orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode(),)
        except TypeError:
            return (str(value),)
    return (str(value),)


class EventView:
    """Field values of one event by field key: ``raws`` (as read), ``strings`` (string forms, as is)
    and ``lows`` (string forms, lower-cased).

    The engine fills ``raws`` and ``lows`` for every field a rule group reads (``scan.py``);
    leaves read ``lows`` directly and fall back to the methods, which fill the rest lazily.
    """

    __slots__ = ("event", "raws", "strings", "lows")

    def __init__(self, event: Event, raws: dict[str, Any] | None = None, lows: dict | None = None) -> None:
        self.event = event
        self.raws: dict[str, Any] = {} if raws is None else raws
        self.strings: dict[str, tuple[str, ...]] = {}
        self.lows: dict[str, tuple[str, ...]] = {} if lows is None else lows

    def raw(self, ref: FieldRef) -> Any:
        value = self.raws.get(ref.key, _UNSET)
        if value is _UNSET:
            value = ref.get(self.event)
            self.raws[ref.key] = value
        return value

    def strs(self, ref: FieldRef) -> tuple[str, ...]:
        forms = self.strings.get(ref.key)
        if forms is None:
            forms = str_forms(self.raw(ref))
            self.strings[ref.key] = forms
        return forms

    def low(self, ref: FieldRef) -> tuple[str, ...]:
        forms = self.lows.get(ref.key)
        if forms is None:
            forms = tuple(s.lower() for s in self.strs(ref))
            self.lows[ref.key] = forms
        return forms
