"""Validators compiled from the OISP v0.1 JSON Schemas shipped with the package.

The envelope is validated with agentwatch's extension fields added to it; each
``data`` payload is validated against the ``$defs`` variant whose ``title`` is
the event type (``ai.request`` -> ``ai.schema.json#/$defs/request``). The spec's
example ids are not strict ULIDs, so ``event_id`` is only required non-empty.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema

BASE = "https://oisp.dev/schema/v0.1/"

# Fields agentwatch adds to the envelope (ARCHITECTURE: canonical event).
EXTENSION_PROPERTIES: dict[str, Any] = {
    "session_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 256},
    "parent_session_id": {"type": ["string", "null"], "maxLength": 256},
    "sequence": {"type": ["integer", "null"], "minimum": 0},
    "agent": {"type": ["string", "null"], "maxLength": 256},
    "severity": {"type": "integer", "minimum": 0, "maximum": 10},
}


def _schema_dir() -> Any:
    return resources.files("agentwatch").joinpath("data/oisp-schema")


@cache
def _load(relative: str) -> dict[str, Any]:
    return json.loads(_schema_dir().joinpath(relative).read_text())


def _resolve(uri: str) -> dict[str, Any]:
    if not uri.startswith(BASE):
        raise ValueError(f"schema reference outside the OISP bundle: {uri}")
    return _load(uri[len(BASE) :].split("#", 1)[0])


HANDLERS = {"https": _resolve}


@cache
def envelope_validator() -> Callable[[Any], Any]:
    schema = copy.deepcopy(_load("envelope.schema.json"))
    schema["properties"].update(EXTENSION_PROPERTIES)
    schema.pop("$schema", None)
    return fastjsonschema.compile(schema, handlers=HANDLERS, use_formats=True)


@cache
def variant_titles() -> dict[str, str]:
    """event type -> JSON pointer of its data schema."""
    out: dict[str, str] = {}
    for entry in _schema_dir().joinpath("events").iterdir():
        if not entry.name.endswith(".schema.json"):
            continue
        doc = json.loads(entry.read_text())
        for name, sub in doc.get("$defs", {}).items():
            title = sub.get("title")
            if isinstance(title, str) and "." in title:
                out[title] = f"{BASE}events/{entry.name}#/$defs/{name}"
    return out


@cache
def data_validator(event_type: str) -> Callable[[Any], Any] | None:
    ref = variant_titles().get(event_type)
    if ref is None:
        return None
    path, pointer = ref.split("#", 1)
    doc = copy.deepcopy(_resolve(path))
    doc.pop("$schema", None)
    doc.pop("oneOf", None)
    doc["$ref"] = "#" + pointer
    return fastjsonschema.compile(doc, handlers=HANDLERS, use_formats=True)


def problems(validator: Callable[[Any], Any], value: Any, prefix: str) -> list[str]:
    try:
        validator(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = exc.name.replace("data", prefix, 1) if exc.name else prefix
        rule = exc.message.split(" must ", 1)[-1] if " must " in exc.message else exc.message
        return [f"{where}: must {rule}" if " must " in exc.message else f"{where}: {rule}"]
    return []
