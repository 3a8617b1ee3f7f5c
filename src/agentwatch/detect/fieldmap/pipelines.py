"""Processing pipelines: a Sigma rule's field name -> a canonical field getter.

Which pipeline applies depends on the rule's logsource:

- ``strict`` (product ``agentwatch``; product ``linux``/``macos`` without a service):
  a field must be a Sigma name from :data:`SIGMA_TO_CANONICAL`, a named accessor
  (``user_input`` ...), or an OISP path (``process.exe``, ``data.dest.ip``). Anything
  else is an :class:`UnmappedField` error at load time.
- ``raw record`` (product ``windows``, and every other product/service whose events
  arrive as records with their own field names: auditd, cloud audit logs, web
  servers...): a Sigma name with a canonical equivalent reads the canonical path first
  and the record field second; any other well-formed name reads ``data.attrs.<Name>``,
  the record's own field of exactly that name. Nothing is ever looked up in a
  message text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentwatch.detect.fieldmap.accessors import ENVELOPE_ROOTS, MISSING, NAMED, Getter, first_of, path_getter

# Sigma (Sysmon / Linux taxonomy) field name -> canonical OISP path.
SIGMA_TO_CANONICAL: dict[str, str] = {
    "Image": "process.exe",
    "CommandLine": "process.cmdline",
    "CurrentDirectory": "process.cwd",
    "ProcessId": "process.pid",
    "ParentImage": "process.parent.exe",
    "ParentCommandLine": "process.parent.cmdline",
    "ParentProcessId": "process.ppid",
    "User": "actor.user",
    "Computer": "host.hostname",
    "ComputerName": "host.hostname",
    "Hostname": "host.hostname",
    "TargetFilename": "data.path",
    "DestinationIp": "data.dest.ip",
    "DestinationPort": "data.dest.port",
    "DestinationHostname": "data.dest.domain",
    "SourceIp": "data.src.ip",
    "SourcePort": "data.src.port",
    "SourceHostname": "data.src.domain",
    "Protocol": "data.protocol",
    "QueryName": "data.query_name",
    "QueryType": "data.query_type",
    "QueryResults": "data.answers",
    "EventType": "event_type",
    "Initiated": "initiated",
    "LogonId": "actor.session_id",
}
STRICT_PRODUCTS = frozenset({"agentwatch", "linux", "macos"})
_FIELD_NAME = re.compile(r"^[A-Za-z_@][A-Za-z0-9_.\-@ ]{0,127}$")


class UnmappedField(ValueError):
    """A rule names a field that no pipeline maps for its logsource."""

    def __init__(self, field: str, logsource: dict) -> None:
        where = "/".join(f"{k}={v}" for k, v in sorted(logsource.items()) if v) or "any logsource"
        super().__init__(f"field {field!r} is not mapped for logsource {where}")
        self.field = field


@dataclass(frozen=True)
class FieldRef:
    """A resolved field: ``key`` identifies it for caching, ``get`` reads it."""

    key: str
    get: Getter
    raw: bool = False  # True when read from the raw record (``data.attrs``)
    # The raw record's field this ref reads first: when ``data.attrs`` holds ``attr``, that
    # is the value (a matcher reading many fields fetches ``data.attrs`` once); else ``get``.
    attr: str | None = None


_CACHE: dict[str, FieldRef] = {}
# Field names come from uploaded rules (dry runs included): the memo starts over past this many,
# more than a large rule set names; a ref is found by its key, so a rebuilt one serves the same.
MAX_CACHED_REFS = 4096


def _ref(key: str, getter_factory) -> FieldRef:
    ref = _CACHE.get(key)
    if ref is None:
        ref = getter_factory()
        if len(_CACHE) >= MAX_CACHED_REFS:
            _CACHE.clear()
        _CACHE[key] = ref
    return ref


def canonical(name: str) -> FieldRef | None:
    """A canonical field by its own name: a named accessor or an OISP path."""
    if name in NAMED:
        return _ref(name, lambda: FieldRef(name, NAMED[name][0]))
    root = name.split(".", 1)[0]
    if root in ENVELOPE_ROOTS:
        return _ref(name, lambda: FieldRef(name, path_getter(name)))
    return None


def is_strict(logsource: dict) -> bool:
    product = logsource.get("product")
    return product in STRICT_PRODUCTS and not (product != "agentwatch" and logsource.get("service"))


def resolve(field: str, logsource: dict, extra: dict[str, str] | None = None) -> FieldRef:
    """Map a rule's field name for the rule's logsource; raises :class:`UnmappedField`."""
    if extra and field in extra:
        target = canonical(extra[field])
        if target is not None:
            return target
    mapped = SIGMA_TO_CANONICAL.get(field)
    if is_strict(logsource):
        if mapped is not None:
            return canonical(mapped)  # type: ignore[return-value]
        ref = canonical(field)
        if ref is None:
            raise UnmappedField(field, logsource)
        return ref
    if not _FIELD_NAME.fullmatch(field):
        raise UnmappedField(field, logsource)
    raw_key = "data.attrs." + field
    if mapped is not None:
        return _ref(
            f"{mapped}|{raw_key}",
            # the record's own field first (it is the source for raw-record logsources),
            # the canonical path for native agentwatch events that have no record
            lambda: FieldRef(
                f"{mapped}|{raw_key}", first_of(_attr_getter(field), path_getter(mapped)), raw=True, attr=field
            ),
        )
    named = canonical(field) if field in NAMED else None
    if named is not None:
        return named
    return _ref(raw_key, lambda: FieldRef(raw_key, _attr_getter(field), raw=True, attr=field))


def _attr_getter(name: str) -> Getter:
    def get(event) -> object:
        attrs = event.body.get("data")
        if type(attrs) is not dict:
            return MISSING
        attrs = attrs.get("attrs")
        if type(attrs) is not dict:
            return MISSING
        return attrs.get(name, MISSING)

    return get
