"""Validators compiled from the OISP v0.1 JSON Schemas shipped with the package.

The envelope is validated with agentwatch's extension fields added to it; each
``data`` payload is validated against the ``$defs`` variant whose ``title`` is
the event type (``ai.request`` -> ``ai.schema.json#/$defs/request``). The spec's
example ids are not strict ULIDs, so ``event_id`` is only required non-empty.

The schemas declare draft 2020-12; jsonschema-rs implements that draft, resolves
references only inside the packaged bundle (a registry of its files, nothing
fetched) and validates an event in a couple of microseconds, which matters on the
ingest path. A valid event costs one ``is_valid`` call (``event_validator``: the envelope
and the payload together); the error walk runs only for a rejected one.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

BASE = "https://oisp.dev/schema/v0.1/"
MAX_RULE_CHARS = 300

# Fields agentwatch adds to the envelope (ARCHITECTURE: canonical event).
EXTENSION_PROPERTIES: dict[str, Any] = {
    "session_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 256},
    "parent_session_id": {"type": ["string", "null"], "maxLength": 256},
    "sequence": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1},
    "agent": {"type": ["string", "null"], "maxLength": 256},
    "severity": {"type": "integer", "minimum": 0, "maximum": 10},
}

Validator = Any  # a compiled jsonschema_rs validator


def _schema_dir() -> Any:
    return resources.files("agentwatch").joinpath("data/oisp-schema")


@cache
def _load(relative: str) -> dict[str, Any]:
    return json.loads(_schema_dir().joinpath(relative).read_text())


def _documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for folder in ("", "common", "events"):
        base = _schema_dir().joinpath(folder) if folder else _schema_dir()
        for entry in base.iterdir():
            if entry.name.endswith(".schema.json"):
                doc = _load(f"{folder}/{entry.name}" if folder else entry.name)
                out.append((doc.get("$id") or BASE + (f"{folder}/" if folder else "") + entry.name, doc))
    return out


@cache
def _registry() -> Any:
    """Every packaged schema under its ``$id``: references resolve here and nowhere else."""
    return jsonschema_rs.Registry(_documents())


def _compile(schema: dict[str, Any]) -> Validator:
    return jsonschema_rs.validator_for(schema, registry=_registry(), validate_formats=True)


@cache
def envelope_validator() -> Validator:
    schema = copy.deepcopy(_load("envelope.schema.json"))
    schema["properties"].update(EXTENSION_PROPERTIES)
    return _compile(schema)


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
def data_validator(event_type: str) -> Validator | None:
    ref = variant_titles().get(event_type)
    if ref is None:
        return None
    return _compile({"$ref": ref})


@cache
def event_validator(event_type: str) -> Validator | None:
    """The envelope (with agentwatch's fields) and ``event_type``'s ``data`` payload in one
    schema; None for a type without a payload schema. Valid exactly when both
    :func:`envelope_validator` and :func:`data_validator` find the event valid, at the cost of
    one ``is_valid`` call, the payload handed to the validator once instead of twice. It says
    only whether: which field broke which rule is asked of the other two."""
    ref = variant_titles().get(event_type)
    if ref is None:
        return None
    schema = copy.deepcopy(_load("envelope.schema.json"))
    schema["properties"].update(EXTENSION_PROPERTIES)
    schema["properties"]["data"] = {**schema["properties"]["data"], "$ref": ref}
    return _compile(schema)


def _path(prefix: str, parts: Any) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def problems(validator: Validator, value: Any, prefix: str) -> list[str]:
    """``["<field path>: <rule broken>"]`` for the first problem, or ``[]`` when ``value`` is valid."""
    if validator.is_valid(value):
        return []
    for error in validator.iter_errors(value):
        return [f"{_path(prefix, error.instance_path)}: {error.message[:MAX_RULE_CHARS]}"]
    return [f"{prefix}: does not match its schema"]
