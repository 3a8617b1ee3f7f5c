"""Entities named by an event (host, user, process, ip, domain, file, model, agent).

Each entity is ``{"type", "value", "id"}`` where ``id`` is a UUID5 of type and
value, so the same entity has the same id whatever event or source named it.
"""

from __future__ import annotations

import ipaddress
import uuid
from functools import lru_cache
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from agentwatch.events.model import Event

NAMESPACE = uuid.UUID("6f1c3f5e-6a0e-4d5e-9b8a-8f0a7c1e2d40")
MAX_ENTITIES = 32
MAX_VALUE = 512


@lru_cache(maxsize=65_536)
def entity_id(kind: str, value: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{value}"))


@lru_cache(maxsize=65_536)
def entity(kind: str, value: str) -> dict[str, str]:
    """The entity ``{"type", "value", "id"}``: one dict for every event that names it, so it is
    never changed (an event's list of entities is its own)."""
    return {"type": kind, "value": value, "id": entity_id(kind, value)}


def _s(value: Any) -> str | None:
    if isinstance(value, str) and value and len(value) <= MAX_VALUE:
        return value
    return None


def _host_of(endpoint: Any) -> str | None:
    text = _s(endpoint)
    if text is None:
        return None
    try:
        host = urlsplit(text if "//" in text else "//" + text).hostname
    except ValueError:
        return None
    return host


def canonical_address(text: str) -> str | None:
    """An address in the one spelling entities keep: IPv6 compressed in lower case, an
    IPv4-mapped one as IPv4, a zone left out; None when ``text`` is no address."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def canonical_domain(text: str) -> str:
    """A domain name in the one spelling entities keep: lower case, no final dot."""
    return text.lower().rstrip(".")


def _add_address(out: list[tuple[str, str]], value: Any) -> None:
    """An address or a domain name in one spelling whatever the event wrote, so one host is one entity."""
    text = _s(value)
    if text is None:
        return
    address = canonical_address(text)
    if address is not None:
        out.append(("ip", address))
        return
    name = canonical_domain(text)
    if name:
        out.append(("domain", name))


def derive(event: Event) -> list[dict[str, str]]:
    body = event.body
    found: list[tuple[str, str]] = []
    hostname = _s(event.hostname)
    if hostname:
        found.append(("host", hostname))
    actor = body.get("actor")
    if isinstance(actor, dict) and _s(actor.get("user")):
        found.append(("user", actor["user"]))
    proc = event.process
    process = _s(proc.get("exe")) or _s(proc.get("name"))  # the name when the exe is no usable text
    if process:
        found.append(("process", process))
    if event.agent:
        found.append(("agent", event.agent))
    data = event.data
    kind = event.event_type.partition(".")[0]
    if kind == "network":
        for side in ("dest", "src"):
            ep = data.get(side)
            if isinstance(ep, dict):
                _add_address(found, ep.get("ip"))
                _add_address(found, ep.get("domain"))
        _add_address(found, data.get("query_name") or data.get("domain"))
    elif kind == "file":
        if _s(data.get("path")):
            found.append(("file", data["path"]))
        file_info = data.get("file")
        if isinstance(file_info, dict) and _s(file_info.get("path")):
            found.append(("file", file_info["path"]))
    elif kind == "ai":
        provider = data.get("provider")
        if isinstance(provider, dict):
            h = _host_of(provider.get("endpoint"))
            if h:
                _add_address(found, h)
        model = data.get("model")
        if isinstance(model, dict) and _s(model.get("id")):
            found.append(("model", model["id"]))
    return [entity(kind_, value) for kind_, value in islice(dict.fromkeys(found), MAX_ENTITIES)]
