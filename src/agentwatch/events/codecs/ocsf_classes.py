"""OCSF event classes -> OISP event types and their ``data`` payloads.

A class whose activity has an OISP counterpart becomes that OISP event (a Process Activity
``Launch`` is a ``process.exec``, a DNS Activity a ``network.dns``), so detection rules and
entity derivation see it as they see a sensor's event. What has none, or lacks the field
the OISP payload requires (a launch without an executable), keeps a generic type of its
class (``ocsf.process_activity``), and a class this table does not know ``ocsf.event``;
the original OCSF event stays beside it in every case (``ext.ocsf``).

Class and activity numbers are those of the OCSF schema (1.x): File System Activity 1001,
Process Activity 1007, Detection Finding 2004, Network Activity 4001, HTTP Activity 4002,
DNS Activity 4003, API Activity 6003, AI Agent Activity 6009 (base attributes only).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from agentwatch.events.codecs import ocsf_fields as f
from agentwatch.events.entities import canonical_address
from agentwatch.events.model import EventError

CLASSES: dict[int, str] = {
    1001: "file_system_activity",
    1007: "process_activity",
    2004: "detection_finding",
    4001: "network_activity",
    4002: "http_activity",
    4003: "dns_activity",
    6003: "api_activity",
    6009: "ai_agent_activity",
}
GENERIC = "ocsf.event"
# every event type this module can produce that OISP does not define
GENERIC_TYPES = (GENERIC, *(f"ocsf.{name}" for name in CLASSES.values()))

# File System Activity: 1 Create, 2 Read, 3 Update, 4 Delete, 5 Rename, 14 Open
FILE_TYPES = {1: "file.write", 2: "file.read", 3: "file.write", 4: "file.delete", 5: "file.rename", 14: "file.open"}
# Network Activity: 1 Open, 4 Fail, 5 Refuse are connections; 2 Close, 3 Reset, 6 Traffic are flows
NET_TYPES = dict.fromkeys((1, 4, 5), "network.connect") | dict.fromkeys((2, 3, 6), "network.flow")
DNS_QUERY_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "NS", "PTR", "SRV"})
DNS_RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}  # OCSF rcode_id -> OISP
PROTOCOLS = frozenset({"tcp", "udp"})
MAX_PORT = 65535
MAX_ANSWERS = 32


@lru_cache(maxsize=4096)  # the same few addresses recur event after event: parse each once
def _is_address(text: str) -> bool:
    return canonical_address(text) is not None


def address(doc: dict[str, Any], path: str) -> str | None:
    """An ``ip_t`` field: an IPv4 or IPv6 address as sent (its entity is the canonical
    spelling); text that is no address is refused, not taken for a domain name."""
    ip = f.text(doc, path, 64)
    if ip and not _is_address(ip):
        raise EventError(path, "must be an IP address")
    return ip


def endpoint(doc: dict[str, Any], path: str) -> dict[str, Any] | None:
    """An OCSF network endpoint as an OISP one (ip, port, domain); None when it names nothing."""
    if f.obj(doc, path) is None:
        return None
    out: dict[str, Any] = {}
    ip = address(doc, f"{path}.ip")
    if ip:
        out["ip"] = ip
    port = f.integer(doc, f"{path}.port", 0, MAX_PORT)
    if port is not None:
        out["port"] = port
    domain = f.text(doc, f"{path}.hostname", 255) or f.text(doc, f"{path}.domain", 255)
    if domain:
        out["domain"] = domain
    return out if ("ip" in out or "domain" in out) else None


def _file(doc: dict[str, Any], activity: int) -> tuple[str, dict[str, Any]] | None:
    kind = FILE_TYPES.get(activity)
    path = f.text(doc, "file.path") or f.text(doc, "file.name")
    if kind is None or path is None:
        return None
    if kind == "file.rename":
        new = f.text(doc, "file_result.path") or f.text(doc, "file_result.name")
        return (kind, {"old_path": path, "new_path": new}) if new else None
    data: dict[str, Any] = {"path": path}
    if kind == "file.open":
        data["flags"] = []
    elif kind == "file.write" and activity == 1:
        data["created"] = True
    return kind, data


def _process(doc: dict[str, Any], activity: int) -> tuple[str, dict[str, Any]] | None:
    if activity == 1:  # Launch
        exe = f.text(doc, "process.file.path") or f.text(doc, "process.name")
        if exe is None:
            return None
        data: dict[str, Any] = {"exe": exe}
        cwd = f.text(doc, "process.working_directory")
        if cwd:
            data["cwd"] = cwd
        return "process.exec", data
    if activity == 2:  # Terminate
        code = f.integer(doc, "exit_code", -(2**31), 2**31 - 1)
        return ("process.exit", {"exit_code": code}) if code is not None else None
    return None


def _protocol(doc: dict[str, Any]) -> dict[str, Any]:
    name = f.text(doc, "connection_info.protocol_name", 32)
    if name is None:
        return {}
    return {"protocol": name.lower() if name.lower() in PROTOCOLS else "other"}


def _network(doc: dict[str, Any], activity: int) -> tuple[str, dict[str, Any]] | None:
    kind = NET_TYPES.get(activity)
    dest = endpoint(doc, "dst_endpoint")
    if kind is None or dest is None:
        return None
    data: dict[str, Any] = {"dest": dest, **_protocol(doc)}
    src = endpoint(doc, "src_endpoint")
    if src is not None:
        data["src"] = src
    if kind == "network.connect":
        data["success"] = activity == 1
    else:
        sent = f.integer(doc, "traffic.bytes_out", 0, 2**63 - 1)
        got = f.integer(doc, "traffic.bytes_in", 0, 2**63 - 1)
        if sent is not None:
            data["bytes_sent"] = sent
        if got is not None:
            data["bytes_received"] = got
    return kind, data


def _http(doc: dict[str, Any], _activity: int) -> tuple[str, dict[str, Any]] | None:
    dest = endpoint(doc, "dst_endpoint")
    host = f.text(doc, "http_request.url.hostname", 255)
    if dest is None and host:
        dest = {"domain": host}
        port = f.integer(doc, "http_request.url.port", 0, MAX_PORT)
        if port is not None:
            dest["port"] = port
    if dest is None:
        return None
    http: dict[str, Any] = {}
    for key, path in (
        ("method", "http_request.http_method"),
        ("path", "http_request.url.path"),
        ("user_agent", "http_request.user_agent"),
    ):
        value = f.text(doc, path)
        if value:
            http[key] = value
    if host:
        http["host"] = host
    code = f.integer(doc, "http_response.code", 0, 999)
    if code is not None:
        http["status_code"] = code
    data: dict[str, Any] = {"dest": dest, "http": http, **_protocol(doc)}
    src = endpoint(doc, "src_endpoint")
    if src is not None:
        data["src"] = src
    return "network.flow", data


def _dns(doc: dict[str, Any], _activity: int) -> tuple[str, dict[str, Any]] | None:
    name = f.text(doc, "query.hostname", 255)
    if name is None:
        return None
    qtype = f.text(doc, "query.type", 16)
    data: dict[str, Any] = {
        "query_name": name,
        "query_type": qtype.upper() if qtype and qtype.upper() in DNS_QUERY_TYPES else "other",
    }
    rcode = f.integer(doc, "rcode_id", 0, 65535)
    if rcode is not None:
        data["response_code"] = DNS_RCODES.get(rcode, "other")
    answers = []
    for i, answer in enumerate(f.object_list(doc, "answers", MAX_ANSWERS)):
        try:  # named as the sender wrote it: answers[1].rdata
            item = {"value": f.text(answer, "rdata", 1024) or ""}
            kind = f.text(answer, "type", 16)
        except EventError as exc:
            raise EventError(f"answers[{i}].{exc.field}", exc.rule) from None
        if kind:
            item["type"] = kind
        ttl = answer.get("ttl")
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2**31 - 1:
                raise EventError(f"answers[{i}].ttl", "must be an integer between 0 and 2147483647")
            item["ttl"] = ttl
        answers.append(item)
    if answers:
        data["answers"] = answers
    resolver = address(doc, "dst_endpoint.ip")
    if resolver:
        data["resolver"] = resolver
    return "network.dns", data


MAPPERS = {1001: _file, 1007: _process, 4001: _network, 4002: _http, 4003: _dns}


def generic(doc: dict[str, Any], class_uid: int, activity: int) -> dict[str, Any]:
    """The summary a generic event carries as its ``data`` (the whole event is in ``ext.ocsf``)."""
    data: dict[str, Any] = {"class_uid": class_uid, "activity_id": activity}
    name = CLASSES.get(class_uid)
    if name is not None:
        data["class_name"] = name
    if class_uid == 6003:
        for key, path in (("operation", "api.operation"), ("service", "api.service.name")):
            value = f.text(doc, path, 256)
            if value:
                data[key] = value
    elif class_uid == 2004:
        for key, path in (("title", "finding_info.title"), ("finding_uid", "finding_info.uid")):
            value = f.text(doc, path, 1024)
            if value:
                data[key] = value
    return data


def map_class(doc: dict[str, Any], class_uid: int, activity: int) -> tuple[str, dict[str, Any]]:
    """The OISP event type and ``data`` of one OCSF event; raises EventError naming an OCSF field."""
    mapper = MAPPERS.get(class_uid)
    mapped = mapper(doc, activity) if mapper is not None else None
    if mapped is not None:
        return mapped
    name = CLASSES.get(class_uid)
    return (f"ocsf.{name}" if name else GENERIC), generic(doc, class_uid, activity)
