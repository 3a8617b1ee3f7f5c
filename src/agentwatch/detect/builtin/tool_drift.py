"""MCP rug pull: a tool's description changes after agents have seen it.

Tool poisoning can be staged: a server offers a harmless tool, gets approved, and
later serves the same tool name with new (hidden) instructions. We remember a
hash of each tool's description per host, server and name, and report when a
later session sees a different one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from agentwatch.detect.builtin.base import BuiltinRule, Lru, host_of, scope_of
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

# Descriptions whose digest is remembered: at most DIGESTS of up to DIGEST_TEXT characters each.
DIGESTS = 1024
DIGEST_TEXT = 4096


@dataclass
class _Seen:
    digest: str
    scope: str
    event_id: str
    ts: float


def tool_descriptions(event: Event) -> Iterator[tuple[str, str, str]]:
    """(server, tool name, description) for each tool an event describes."""
    data = event.data
    if event.event_type == "agent.tool_call":
        tool = data.get("tool")
        if isinstance(tool, dict) and isinstance(tool.get("description"), str) and tool.get("name"):
            yield str(tool.get("server") or tool.get("provider") or ""), str(tool["name"]), tool["description"]
        return
    tools = data.get("tools")
    if not isinstance(tools, list):
        return
    server = ""
    for key in ("server", "mcp_server"):
        if isinstance(data.get(key), str):
            server = data[key]
    if not server and isinstance(data.get("provider"), dict):
        server = str(data["provider"].get("name") or "")
    for tool in tools[:512]:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if isinstance(fn.get("description"), str) and fn.get("name"):
            yield server, str(fn["name"]), fn["description"]


class ToolDescriptionDrift(BuiltinRule):
    id = "AW-BUILTIN-TOOL-DRIFT"
    title = "Tool description changed between sessions (MCP rug pull)"
    severity = 8
    tags = ["atlas.aml.t0053", "atlas.aml.t0010", "attack.t1195", "attack.persistence"]
    description = "A tool already seen with one description is offered again with a different description."

    def __init__(self, cap: int) -> None:
        self.seen: Lru[_Seen] = Lru(cap)
        # description -> its digest: an agent sends the same tool list with every LLM call, so
        # most descriptions were hashed before. Plain dict operations; emptied when full.
        self._digests: dict[str, str] = {}

    def state_size(self) -> int:
        return len(self.seen)

    def _digest(self, desc: str) -> str:
        digest = self._digests.get(desc)
        if digest is None:
            digest = hashlib.sha256(desc.encode()).hexdigest()
            if len(desc) <= DIGEST_TEXT:
                if len(self._digests) >= DIGESTS:
                    self._digests.clear()
                self._digests[desc] = digest
        return digest

    def observe(self, event: Event) -> list[Finding]:
        out: list[Finding] = []
        scope = host = ""
        for server, name, desc in tool_descriptions(event):
            if not scope:
                scope, host = scope_of(event), host_of(event)
            key = (host, server, name)
            digest = self._digest(desc)
            before = self.seen.get(key)
            if before is None or event.ts < before.ts:
                if before is None:
                    self.seen.put(key, _Seen(digest, scope, event.event_id, event.ts))
                continue
            if before.digest == digest:
                continue  # unchanged: keep the first sighting
            out.append(
                self.finding(
                    [event],
                    f"tool {name!r}{f' of {server!r}' if server else ''} changed its description "
                    f"(first seen in {before.scope}, now in {scope})",
                    dedup_key=f"{key}|{digest}",
                    tool=name,
                    server=server,
                    previous_digest=before.digest,
                    digest=digest,
                    previous_event_id=before.event_id,
                    previous_scope=before.scope,
                    same_session=before.scope == scope,
                )
            )
            self.seen.put(key, _Seen(digest, scope, event.event_id, event.ts))
        return out
