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
    return str(value)[:limit] if isinstance(value, str | int) and str(value) else None


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


def agents_from_events(events: Sequence[Event]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.event_type not in WATCHED:
            continue
        host_doc = e.body.get("host") if isinstance(e.body.get("host"), dict) else {}
        host = _str(host_doc.get("hostname"), 255) or "unknown-host"
        proc = e.process
        pname = _str(proc.get("name"), 100) or (os.path.basename(str(proc.get("exe", ""))) or "unknown")[:100]
        data = e.data
        signal = {
            "detector": "telemetry",
            "signal_type": "",
            "description": "",
            "confidence": "confirmed",
            "evidence": {"event_id": e.event_id, "event_type": e.event_type, "pid": proc.get("pid"), "process": pname},
            "timestamp": iso(e.ts),
        }
        if e.event_type == "ai.request":
            provider = (
                _str((data.get("provider") or {}).get("name")) if isinstance(data.get("provider"), dict) else None
            )
            model = _str((data.get("model") or {}).get("id")) if isinstance(data.get("model"), dict) else None
            agent_doc = data.get("agent") if isinstance(data.get("agent"), dict) else {}
            framework = _str(agent_doc.get("framework")) or _str(agent_doc.get("name")) or provider or "unknown"
            signal.update(
                signal_type="llm_api_call",
                description=f"process {pname} on {host} called {provider or 'an LLM API'}"
                + (f" ({model})" if model else ""),
            )
            signal["evidence"].update(provider=provider, model=model)
            agent = _base(host, f"llm-client/{pname}", "llm_client", framework, signal, e.ts)
            agent["metadata"] = {
                "process_name": pname,
                "exe": _str(proc.get("exe"), 500),
                "pid": proc.get("pid"),
                "providers": [provider] if provider else [],
                "models": [model] if model else [],
            }
        else:
            tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
            server = _str(tool.get("server"))
            if not server and tool.get("provider") != "mcp":
                continue
            server = server or "unknown"
            name = _str(tool.get("name"))
            signal.update(signal_type="mcp_tool_call", description=f"MCP server {server} used by {pname} on {host}")
            signal["evidence"].update(server=server, tool=name, session_id=e.session_id)
            agent = _base(host, f"mcp/{server}", "mcp_server", "mcp", signal, e.ts)
            agent["mcp_capabilities"] = {
                "transport": "observed",
                "server_info": {"name": server},
                "tools": [{"name": name}] if name else [],
            }
            agent["metadata"] = {"sessions": [e.session_id] if e.session_id else [], "clients": [pname]}
        prev = found.get(agent["id"])
        if prev is None:
            found[agent["id"]] = agent
            continue
        prev["_ts"] = max(prev["_ts"], agent["_ts"])
        for k, v in agent["metadata"].items():
            if isinstance(v, list):
                prev["metadata"][k] = sorted(set(prev["metadata"].get(k, [])) | set(v))[:50]
        if agent["mcp_capabilities"]:
            names = {t["name"] for t in prev["mcp_capabilities"]["tools"]} | {
                t["name"] for t in agent["mcp_capabilities"]["tools"]
            }
            prev["mcp_capabilities"]["tools"] = [{"name": n} for n in sorted(names)][:200]
    return list(found.values())
