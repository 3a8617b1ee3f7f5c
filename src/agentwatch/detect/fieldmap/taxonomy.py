"""Logsource taxonomy: which Sigma ``logsource`` an Event belongs to.

An event carries one or more ``(product, category, service)`` keys; a rule applies to
the event when each of its logsource parts is absent or equal to the key's part.

- agentwatch's own events (OISP envelope) are product ``agentwatch`` with a category
  from their event type (``ai.request`` -> ``llm_request`` ...). Process, file,
  network and DNS events also carry the host OS (``linux``/``windows``/``macos``) as
  product with the Sigma category names (``process_creation``, ``file_event``,
  ``network_connection``, ``dns_query``) so SigmaHQ rules for those apply.
- Windows event-log records (``source_format == "evtx"``, see ``windows.py``) are product
  ``windows`` with the service from the channel and, for Sysmon, the category from
  the event id (the Sysmon mapping every Sigma backend uses).
"""

from __future__ import annotations

from agentwatch.events.model import Event

LogsourceKey = tuple[str | None, str | None, str | None]

PRODUCT = "agentwatch"

# OISP event type -> agentwatch categories (first one is the primary).
AGENT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "ai.request": ("llm_request",),
    "ai.response": ("llm_response",),
    "ai.streaming_chunk": ("llm_response",),
    "ai.embedding": ("llm_request",),
    "agent.tool_call": ("tool_call",),
    "agent.tool_result": ("tool_result",),
    "agent.session": ("session",),
    "agent.plan_step": ("session",),
    "agent.rag_retrieve": ("tool_result", "retrieval"),
    "process.exec": ("process_creation", "process"),
    "process.exit": ("process_termination", "process"),
    "process.fork": ("process",),
    "file.open": ("file", "file_access"),
    "file.read": ("file", "file_access"),
    "file.write": ("file", "file_event"),
    "file.delete": ("file", "file_delete"),
    "file.rename": ("file", "file_rename"),
    "network.connect": ("network", "network_connection"),
    "network.accept": ("network", "network_connection"),
    "network.flow": ("network",),
    "network.dns": ("dns", "dns_query"),
}
# Categories every agentwatch event type may also be asked for by name.
AGENT_TAXONOMY = (
    "llm_request",
    "llm_response",
    "tool_call",
    "tool_result",
    "mcp",
    "session",
    "process_creation",
    "process",
    "file",
    "network",
    "dns",
    "log",
)
# Host OS (host.os) -> Sigma product for OS-level events.
OS_PRODUCTS = {"linux": "linux", "darwin": "macos", "macos": "macos", "windows": "windows"}
OS_LEVEL_PREFIXES = ("process.", "file.", "network.")

# Sysmon event id -> Sigma categories.
SYSMON_CATEGORIES: dict[int, tuple[str, ...]] = {
    1: ("process_creation",),
    2: ("file_change",),
    3: ("network_connection",),
    4: ("sysmon_status",),
    5: ("process_termination",),
    6: ("driver_load",),
    7: ("image_load",),
    8: ("create_remote_thread",),
    9: ("raw_access_thread",),
    10: ("process_access",),
    11: ("file_event",),
    12: ("registry_event",),
    13: ("registry_event", "registry_set"),
    14: ("registry_event", "registry_rename"),
    15: ("create_stream_hash",),
    16: ("sysmon_status",),
    17: ("pipe_created",),
    18: ("pipe_created",),
    19: ("wmi_event",),
    20: ("wmi_event",),
    21: ("wmi_event",),
    22: ("dns_query",),
    23: ("file_delete",),
    24: ("clipboard_capture",),
    25: ("process_tampering",),
    26: ("file_delete_detected",),
    27: ("file_block_executable",),
    28: ("file_block_shredding",),
    29: ("file_executable_detected",),
    255: ("sysmon_error",),
}
# Windows channel -> Sigma service.
CHANNEL_SERVICES: dict[str, str] = {
    "security": "security",
    "system": "system",
    "application": "application",
    "microsoft-windows-sysmon/operational": "sysmon",
    "microsoft-windows-powershell/operational": "powershell",
    "windows powershell": "powershell-classic",
    "microsoft-windows-windows defender/operational": "windefend",
    "microsoft-windows-taskscheduler/operational": "taskscheduler",
    "microsoft-windows-wmi-activity/operational": "wmi",
    "microsoft-windows-dns-client/operational": "dns-client",
    "microsoft-windows-bits-client/operational": "bits-client",
    "microsoft-windows-codeintegrity/operational": "codeintegrity-operational",
    "microsoft-windows-windows firewall with advanced security/firewall": "firewall-as",
    "microsoft-windows-terminalservices-localsessionmanager/operational": "terminalservices-localsessionmanager",
    "microsoft-windows-ntlm/operational": "ntlm",
    "microsoft-windows-applocker/exe and dll": "applocker",
    "microsoft-windows-applocker/msi and script": "applocker",
    "microsoft-windows-dhcp-server/operational": "dhcp",
    "microsoft-windows-smbclient/security": "smbclient-security",
    "microsoft-windows-openssh/operational": "openssh",
    "microsoft-windows-appxdeployment-server/operational": "appxdeployment-server",
    "microsoft-windows-driverframeworks-usermode/operational": "driver-framework",
    "microsoft-windows-ldap-client/debug": "ldap",
    "microsoft-windows-printservice/admin": "printservice-admin",
    "microsoft-windows-printservice/operational": "printservice-operational",
    "microsoft-windows-security-mitigations/kernel mode": "security-mitigations",
    "microsoft-windows-shell-core/operational": "shell-core",
    "microsoft-windows-kernel-shimengine/operational": "shell-core",
    "microsoft-windows-capi2/operational": "capi2",
    "microsoft-windows-certificateservicesclient-lifecycle-system/operational": (
        "certificateservicesclient-lifecycle-system"
    ),
    "microsoft-windows-appmodel-runtime/admin": "appmodel-runtime",
    "microsoft-windows-diagnosis-scripted/operational": "diagnosis-scripted",
    "microsoft-windows-lsa/operational": "lsa-server",
    "microsoft-windows-bitlocker/bitlocker management": "bitlocker",
    "microsoft-windows-vhdmp/operational": "vhdmp",
    "microsoft-windows-hyper-v-worker-admin": "hyper-v-worker",
    "microsoft-windows-kernel-pnp/device configuration": "kernel-pnp",
}
# PowerShell operational events that have their own Sigma categories.
POWERSHELL_CATEGORIES = {4103: "ps_module", 4104: "ps_script"}
POWERSHELL_CLASSIC_CATEGORIES = {400: "ps_classic_start", 600: "ps_classic_provider_start", 800: "ps_classic_script"}


def _expand(product: str | None, categories: tuple[str, ...], service: str | None) -> list[LogsourceKey]:
    if not categories:
        return [(product, None, service)]
    return [(product, c, service) for c in categories]


_WINDOWS_KEYS: dict[tuple, list[LogsourceKey]] = {}


def windows_keys(attrs: dict, channel: str, event_id: int | None) -> list[LogsourceKey]:
    """Logsource keys of one Windows event-log record (memoised: few distinct combinations exist)."""
    memo = (channel, event_id, attrs.get("EventType") if event_id == 12 else None)
    keys = _WINDOWS_KEYS.get(memo)
    if keys is None:
        keys = _windows_keys(attrs, channel, event_id)
        if len(_WINDOWS_KEYS) < 4096:
            _WINDOWS_KEYS[memo] = keys
    return keys


def _windows_keys(attrs: dict, channel: str, event_id: int | None) -> list[LogsourceKey]:
    service = CHANNEL_SERVICES.get(channel.lower())
    categories: tuple[str, ...] = ()
    if service == "sysmon" and event_id is not None:
        categories = SYSMON_CATEGORIES.get(event_id, ())
        if event_id == 12:
            kind = str(attrs.get("EventType", "")).lower()
            if kind.startswith("create"):
                categories = (*categories, "registry_add")
            elif kind.startswith("delete"):
                categories = (*categories, "registry_delete")
    elif service == "powershell" and event_id in POWERSHELL_CATEGORIES:
        categories = (POWERSHELL_CATEGORIES[event_id],)
    elif service == "powershell-classic" and event_id in POWERSHELL_CLASSIC_CATEGORIES:
        categories = (POWERSHELL_CLASSIC_CATEGORIES[event_id],)
    keys = _expand("windows", categories, service)
    if service == "powershell-classic":  # SigmaHQ names this channel "powershell-classic"
        keys += _expand("windows", categories, "powershell")
    return keys


def event_keys(event: Event) -> list[LogsourceKey]:
    """Every logsource key the event carries (see the module docstring)."""
    if event.source_format == "evtx":
        attrs = event.data.get("attrs")
        if not isinstance(attrs, dict):
            return []
        eid = attrs.get("EventID")
        if type(eid) is not int:
            try:
                eid = int(eid)
            except (TypeError, ValueError):
                eid = None
        return windows_keys(attrs, str(attrs.get("Channel") or ""), eid)
    etype = event.event_type
    cats = AGENT_CATEGORIES.get(etype)
    if cats is None:
        head = etype.split(".", 1)[0]
        cats = (head,) if head in AGENT_TAXONOMY else ()
    data = event.data
    tool = data.get("tool")
    if (isinstance(tool, dict) and tool.get("provider") == "mcp") or etype.startswith("mcp."):
        cats = (*cats, "mcp")
    keys = _expand(PRODUCT, cats, None)
    if etype.startswith(OS_LEVEL_PREFIXES):
        host = event.body.get("host")
        os_name = host.get("os") if isinstance(host, dict) else None
        product = OS_PRODUCTS.get(str(os_name).lower()) if os_name else None
        if product:
            keys += _expand(product, cats, None)
    return keys


def applies(logsource: dict, key: LogsourceKey) -> bool:
    """True when a rule's logsource selects events carrying ``key``."""
    product, category, service = key
    return (
        (logsource.get("product") in (None, product))
        and (logsource.get("category") in (None, category))
        and (logsource.get("service") in (None, service))
    )
