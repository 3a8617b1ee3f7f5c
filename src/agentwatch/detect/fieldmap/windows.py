"""Windows event-log records (EVTX rendered as JSON) as canonical Events.

The SigmaHQ regression samples, and what ``evtx_dump -o json`` or Winlogbeat-style
collectors produce, look like ``{"Event": {"System": {...}, "EventData": {...}}}``.
Such a record becomes one :class:`Event` with ``source_format == "evtx"``:

- ``data.attrs``: every field of the record, flat, by its Windows name: the
  ``EventData`` (or the single ``UserData`` child) fields, plus ``EventID``,
  ``Channel``, ``Computer``, ``Provider_Name``, ``Level``, ``Task``, ``Opcode``,
  ``Keywords``, ``EventRecordID``, ``Version`` and ``SecurityUserID`` from ``System``.
  Names containing spaces are also reachable without them (``Threat Name`` ->
  ``ThreatName``). Sigma rules for Windows look fields up here by name.
- the canonical OISP parts the record has an equivalent for: ``process.exe``
  (``Image``), ``process.cmdline``, ``process.cwd``, ``process.pid``,
  ``process.parent.{exe,cmdline,pid}``, ``actor.user``, ``host.hostname``,
  ``host.os = "windows"``; ``data.path`` (``TargetFilename``), ``data.dest``/``data.src``
  (``DestinationIp``...), ``data.query_name`` (``QueryName``). agentwatch's own rules,
  written against canonical fields, therefore also see Windows events.
- ``event_type``: ``process.exec`` (Sysmon 1), ``network.connect`` (3), ``file.write``
  (11), ``file.delete`` (23, 26), ``network.dns`` (22), otherwise ``windows.event``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from agentwatch.events.model import Event, parse_ts

SYSMON_EVENT_TYPES = {1: "process.exec", 3: "network.connect", 11: "file.write", 22: "network.dns", 23: "file.delete"}
SYSMON_EVENT_TYPES[26] = "file.delete"
MAX_RECORDS = 10_000


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        if "#text" in value:
            return value["#text"]
        attrs = value.get("#attributes")
        if isinstance(attrs, dict) and len(value) == 1:
            return None
    return value


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(str(value), 16) if str(value).lower().startswith("0x") else None
        except ValueError:
            return None


def flatten(record: dict) -> dict[str, Any]:
    """The flat field map of one ``{"Event": {...}}`` record (see the module docstring)."""
    event = record.get("Event", record)
    system = event.get("System") or {}
    attrs: dict[str, Any] = {}
    provider = system.get("Provider")
    if isinstance(provider, dict):
        pattrs = provider.get("#attributes") or {}
        if "Name" in pattrs:
            attrs["Provider_Name"] = pattrs["Name"]
        if "Guid" in pattrs:
            attrs["Provider_Guid"] = pattrs["Guid"]
    for key in ("EventID", "Version", "Level", "Task", "Opcode", "Keywords", "EventRecordID", "Channel", "Computer"):
        if key in system:
            attrs[key] = _text(system[key])
    security = system.get("Security")
    if isinstance(security, dict) and isinstance(security.get("#attributes"), dict):
        uid = security["#attributes"].get("UserID")
        if uid is not None:
            attrs["SecurityUserID"] = uid
    payload = event.get("EventData")
    if not isinstance(payload, dict):
        user_data = event.get("UserData")
        if isinstance(user_data, dict):
            children = [v for k, v in user_data.items() if k != "#attributes" and isinstance(v, dict)]
            payload = children[0] if len(children) == 1 else None
    if isinstance(payload, dict):
        data_list = payload.get("Data")
        if isinstance(data_list, list):  # <Data Name="x">value</Data> rendered as a list
            for item in data_list:
                if isinstance(item, dict):
                    name = item.get("@Name") or (item.get("#attributes") or {}).get("Name")
                    if name:
                        attrs[name] = item.get("#text")
        for key, value in payload.items():
            if key == "#attributes" or (key == "Data" and isinstance(value, list)):
                continue
            attrs[key] = _text(value)
            if " " in key:
                attrs.setdefault(key.replace(" ", ""), attrs[key])
    return attrs


def _time(system: dict, attrs: dict) -> float:
    created = system.get("TimeCreated")
    stamp = None
    if isinstance(created, dict):
        stamp = (created.get("#attributes") or {}).get("SystemTime")
    if isinstance(stamp, str):
        try:
            return parse_ts(stamp)
        except ValueError:
            pass
    utc = attrs.get("UtcTime")
    if isinstance(utc, str):
        try:
            return datetime.fromisoformat(utc).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    return 0.0


def to_event(record: dict, *, event_id: str | None = None, received_at: float | None = None) -> Event:
    """One EVTX-JSON record -> canonical Event (``source_format="evtx"``)."""
    event = record.get("Event", record)
    system = event.get("System") or {}
    attrs = flatten(record)
    eid = _int(attrs.get("EventID"))
    channel = str(attrs.get("Channel") or "")
    sysmon = channel.lower() == "microsoft-windows-sysmon/operational"
    etype = SYSMON_EVENT_TYPES.get(eid, "windows.event") if sysmon and eid is not None else "windows.event"
    ts = _time(system, attrs)
    body: dict[str, Any] = {
        "oisp_version": "0.1",
        "event_id": event_id or f"evtx-{attrs.get('EventRecordID', '0')}-{eid}",
        "event_type": etype,
        "ts": datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z"),
        "host": {"os": "windows"},
        "source": {"collector": "evtx", "capture_method": "windows_eventlog"},
    }
    if attrs.get("Computer"):
        body["host"]["hostname"] = attrs["Computer"]
    process: dict[str, Any] = {}
    for src, dst in (("Image", "exe"), ("CommandLine", "cmdline"), ("CurrentDirectory", "cwd")):
        if isinstance(attrs.get(src), str):
            process[dst] = attrs[src]
    pid = _int(attrs.get("ProcessId"))
    if pid is not None:
        process["pid"] = pid
    parent: dict[str, Any] = {}
    for src, dst in (("ParentImage", "exe"), ("ParentCommandLine", "cmdline")):
        if isinstance(attrs.get(src), str):
            parent[dst] = attrs[src]
    ppid = _int(attrs.get("ParentProcessId"))
    if ppid is not None:
        parent["pid"] = ppid
        process["ppid"] = ppid
    if parent:
        process["parent"] = parent
    if process:
        body["process"] = process
    if isinstance(attrs.get("User"), str):
        body["actor"] = {"user": attrs["User"]}
    data: dict[str, Any] = {"attrs": attrs}
    if isinstance(attrs.get("TargetFilename"), str):
        data["path"] = attrs["TargetFilename"]
    for side, prefix in (("dest", "Destination"), ("src", "Source")):
        endpoint: dict[str, Any] = {}
        if attrs.get(prefix + "Ip"):
            endpoint["ip"] = attrs[prefix + "Ip"]
        port = _int(attrs.get(prefix + "Port"))
        if port is not None:
            endpoint["port"] = port
        if attrs.get(prefix + "Hostname"):
            endpoint["domain"] = attrs[prefix + "Hostname"]
        if endpoint:
            data[side] = endpoint
    if isinstance(attrs.get("QueryName"), str):
        data["query_name"] = attrs["QueryName"]
    body["data"] = data
    return Event(
        body=body,
        event_id=body["event_id"],
        event_type=etype,
        ts=ts,
        received_at=ts if received_at is None else received_at,
        source_format="evtx",
    )


def iter_records(text: str) -> Iterator[dict]:
    """Records of a file holding one JSON document, several concatenated, or JSON lines."""
    decoder = json.JSONDecoder()
    i, n, count = 0, len(text), 0
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        obj, i = decoder.raw_decode(text, i)
        count += 1
        if count > MAX_RECORDS:
            raise ValueError(f"more than {MAX_RECORDS} records in one file")
        if isinstance(obj, list):
            yield from (o for o in obj if isinstance(o, dict))
        elif isinstance(obj, dict):
            yield obj
