"""Field mapping for detection rules: logsource taxonomy, canonical accessors, pipelines.

- :mod:`.taxonomy`: which ``(product, category, service)`` logsources an Event carries;
- :mod:`.accessors`: canonical fields (OISP paths and named agent accessors such as
  ``user_input`` or ``tool_description``);
- :mod:`.pipelines`: how a rule's field name resolves to a canonical field, per logsource;
- :mod:`.windows`: how a Windows event-log record (EVTX as JSON) becomes an Event.

:class:`FieldMap` bundles them so a rule engine can take one object (and a test or a
deployment can add its own names through ``extra``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentwatch.detect.fieldmap import pipelines, taxonomy
from agentwatch.detect.fieldmap.accessors import MISSING, NAMED
from agentwatch.detect.fieldmap.pipelines import FieldRef, UnmappedField
from agentwatch.events.model import Event

__all__ = ["MISSING", "NAMED", "FieldMap", "FieldRef", "UnmappedField"]


@dataclass
class FieldMap:
    """Resolves rule field names and event logsources.

    ``extra`` maps additional rule field names onto canonical fields (OISP paths or
    named accessors), for every logsource; ``placeholders`` gives the values of Sigma
    ``%name%`` placeholders used with the ``expand`` modifier.
    """

    extra: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, list[str]] = field(default_factory=dict)

    def resolve(self, name: str, logsource: dict) -> FieldRef:
        return pipelines.resolve(name, logsource, self.extra)

    def event_keys(self, event: Event) -> list[taxonomy.LogsourceKey]:
        return taxonomy.event_keys(event)


DEFAULT = FieldMap()
