"""Small builders shared by the Sigma tests: rules from YAML text, canonical events."""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

from agentwatch.detect.fieldmap import FieldMap
from agentwatch.detect.sigma import SigmaEngine, SigmaRule, load_rule
from agentwatch.events.model import Event

_ids = itertools.count(1)


def rules(text: str, fieldmap: FieldMap | None = None) -> list[SigmaRule]:
    return load_rule(textwrap.dedent(text), "<test>", fieldmap=fieldmap)


def engine(*texts: str, fieldmap: FieldMap | None = None) -> SigmaEngine:
    loaded: list[SigmaRule] = []
    for text in texts:
        loaded.extend(rules(text, fieldmap))
    return SigmaEngine(loaded, fieldmap=fieldmap)


def event(event_type: str, ts: float = 1_700_000_000.0, **parts: Any) -> Event:
    """A canonical event; keyword arguments become top-level envelope parts (data=..., process=...)."""
    n = next(_ids)
    body = {"oisp_version": "0.1", "event_id": f"ev-{n}", "event_type": event_type, **parts}
    return Event(
        body=body,
        event_id=body["event_id"],
        event_type=event_type,
        ts=ts,
        received_at=ts,
        agent=parts.get("agent"),
    )


def proc(cmdline: str = "", exe: str = "/usr/bin/true", ts: float = 1_700_000_000.0, **data: Any) -> Event:
    """A process.exec event on a Linux host."""
    return event(
        "process.exec",
        ts,
        host={"hostname": "h1", "os": "linux"},
        actor={"user": data.pop("user", "alice")},
        process={
            "exe": exe,
            "cmdline": cmdline,
            "pid": 10,
            "ppid": 1,
            "parent": {"exe": data.pop("parent", "/bin/sh")},
        },
        data={"exe": exe, **data},
    )


def titles(eng: SigmaEngine, ev: Event) -> list[str]:
    return sorted(r.title for r in eng.match(ev))


def one_rule(detection: str, logsource: str = "{product: linux, category: process_creation}", title: str = "r") -> str:
    """YAML of one rule with the given (indented) detection block."""
    return f"title: {title}\nlogsource: {logsource}\ndetection:\n{textwrap.indent(textwrap.dedent(detection), '  ')}"
