"""Agents seen in telemetry: processes calling LLM APIs and MCP servers used in sessions.

A commit hook on the pipeline turns committed ``ai.request`` and ``agent.tool_call``
events into inventory entries, keyed like scanned services: (host, 0, protocol)
where the protocol names the process (``llm-client/python3``) or the MCP server
(``mcp/github``), so the same process on the same host stays one agent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from agentwatch.discovery.report import agent_id
from agentwatch.events.model import Event, iso

WATCHED = frozenset({"ai.request", "agent.tool_call"})


def _str(value: Any, limit: int = 200) -> str | None:
    """Text or an integer as text, cut to ``limit``; None for anything else or empty text."""
    if isinstance(value, str):
        return value[:limit] or None
    return str(value)[:limit] if isinstance(value, int) else None


def _base(
    host: str, protocol: str, agent_type: str, framework: str, signal: dict[str, Any], ts: float
) -> dict[str, Any]:
    return {
        "id": agent_id(host, 0, protocol),
        "host": host,
        "ip_address": host,
        "port": 0,
        "protocol": protocol,
        "agent_type": agent_type,
        "framework": framework,
        "status": "verified",
        "confidence_score": 1.0,
        "confidence_level": "confirmed",
        "signal_count": 1,
        "signals": [signal],
        "agentpin_identity": None,
        "mcp_capabilities": None,
        "tls_fingerprint": None,
        "metadata": {},
        "score_breakdown": {"method": "observed", "rules_applied": ["seen in telemetry"]},
        "source": "telemetry",
        "_ts": ts,
    }


def _merge(prev: dict[str, Any], metadata: dict[str, Any], tool: str | None, ts: float) -> None:
    """Fold one more sighting of an agent already seen in this batch into its entry."""
    prev["_ts"] = max(prev["_ts"], ts)
    for k, v in metadata.items():
        if v and isinstance(v, list) and not set(v) <= set(prev["metadata"].get(k, [])):
            prev["metadata"][k] = sorted(set(prev["metadata"].get(k, [])) | set(v))[:50]
    caps = prev["mcp_capabilities"]
    if tool and caps is not None and all(t["name"] != tool for t in caps["tools"]):
        caps["tools"] = [{"name": n} for n in sorted({t["name"] for t in caps["tools"]} | {tool})][:200]


def agents_from_events(events: Sequence[Event]) -> list[dict[str, Any]]:
    """One inventory entry per agent seen in ``events``; its signal is the first sighting's.

    A batch often holds thousands of calls by the same few processes, so an entry is built
    once per agent and later sightings only widen its time and metadata.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    # what each sighting could add to an entry already built; a repeat only moves its time
    folded: set[tuple[Any, ...]] = set()
    for e in events:
        if e.event_type not in WATCHED:
            continue
        host_doc = e.body.get("host")
        host = _str(host_doc.get("hostname"), 255) if isinstance(host_doc, dict) else None
        host = host or "unknown-host"
        proc = e.process
        pname = _str(proc.get("name"), 100) or (os.path.basename(str(proc.get("exe", ""))) or "unknown")[:100]
        data = e.data
        if e.event_type == "ai.request":
            provider_doc, model_doc = data.get("provider"), data.get("model")
            provider = _str(provider_doc.get("name")) if isinstance(provider_doc, dict) else None
            model = _str(model_doc.get("id")) if isinstance(model_doc, dict) else None
            protocol, tool = f"llm-client/{pname}", None
            sighting: tuple[Any, ...] = (host, protocol, provider, model)
            if sighting in folded:
                found[(host, protocol)]["_ts"] = max(found[(host, protocol)]["_ts"], e.ts)
                continue
            metadata: dict[str, Any] = {
                "process_name": pname,
                "exe": _str(proc.get("exe"), 500),
                "pid": proc.get("pid"),
                "providers": [provider] if provider else [],
                "models": [model] if model else [],
            }
        else:
            tool_doc = data.get("tool") if isinstance(data.get("tool"), dict) else {}
            server = _str(tool_doc.get("server"))
            if not server and tool_doc.get("provider") != "mcp":
                continue
            server = server or "unknown"
            tool = _str(tool_doc.get("name"))
            protocol = f"mcp/{server}"
            sighting = (host, protocol, e.session_id, pname, tool)
            if sighting in folded:
                found[(host, protocol)]["_ts"] = max(found[(host, protocol)]["_ts"], e.ts)
                continue
            metadata = {"sessions": [e.session_id] if e.session_id else [], "clients": [pname]}
        folded.add(sighting)
        prev = found.get((host, protocol))
        if prev is not None:
            _merge(prev, metadata, tool, e.ts)
            continue
        signal = {
            "detector": "telemetry",
            "signal_type": "",
            "description": "",
            "confidence": "confirmed",
            "evidence": {"event_id": e.event_id, "event_type": e.event_type, "pid": proc.get("pid"), "process": pname},
            "timestamp": iso(e.ts),
        }
        if e.event_type == "ai.request":
            agent_doc = data.get("agent") if isinstance(data.get("agent"), dict) else {}
            framework = _str(agent_doc.get("framework")) or _str(agent_doc.get("name")) or provider or "unknown"
            signal.update(
                signal_type="llm_api_call",
                description=f"process {pname} on {host} called {provider or 'an LLM API'}"
                + (f" ({model})" if model else ""),
            )
            signal["evidence"].update(provider=provider, model=model)
            agent = _base(host, protocol, "llm_client", framework, signal, e.ts)
        else:
            signal.update(signal_type="mcp_tool_call", description=f"MCP server {server} used by {pname} on {host}")
            signal["evidence"].update(server=server, tool=tool, session_id=e.session_id)
            agent = _base(host, protocol, "mcp_server", "mcp", signal, e.ts)
            agent["mcp_capabilities"] = {
                "transport": "observed",
                "server_info": {"name": server},
                "tools": [{"name": tool}] if tool else [],
            }
        agent["metadata"] = metadata
        found[(host, protocol)] = agent
    return list(found.values())
