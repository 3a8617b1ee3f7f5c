"""Ollama: ``/api/version`` and ``/api/tags`` (and the "Ollama is running" root page)."""

from __future__ import annotations

import asyncio

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.signals import Service, Signal


async def probe(http: Http, service: Service) -> list[Signal]:
    version, tags, root = await asyncio.gather(http.get("/api/version"), http.get("/api/tags"), http.get("/"))
    ev = {"host": service.host, "port": service.port, "framework": "ollama"}
    signals: list[Signal] = []
    ver = version.json() if version is not None and version.status == 200 else None
    tag_doc = tags.json() if tags is not None and tags.status == 200 else None
    has_version = isinstance(ver, dict) and isinstance(ver.get("version"), str) and len(ver) <= 3
    models = tag_doc.get("models") if isinstance(tag_doc, dict) else None
    has_tags = isinstance(models, list) and all(isinstance(m, dict) and "name" in m for m in models)
    if has_tags:
        names = [str(m["name"])[:200] for m in models[:50]]
        service.metadata.setdefault("models", names)
        signals.append(
            Signal(
                detector="ollama",
                signal_type="ollama_tags",
                description=f"Ollama model list at {http.url('/api/tags')} ({len(models)} models)",
                confidence="confirmed" if has_version else "high",
                evidence={
                    **ev,
                    "url": http.url("/api/tags"),
                    "models": names,
                    "version": ver.get("version") if has_version else None,
                },
                framework="ollama",
                agent_type="llm_server",
            )
        )
    elif has_version and root is not None and "ollama is running" in root.text.lower():
        signals.append(
            Signal(
                detector="ollama",
                signal_type="ollama_version",
                description=f"Ollama {ver['version']} at {http.url('/api/version')}",
                confidence="high",
                evidence={**ev, "url": http.url("/api/version"), "version": ver["version"]},
                framework="ollama",
                agent_type="llm_server",
            )
        )
    if root is not None and root.status == 200 and root.text.strip().lower() == "ollama is running":
        signals.append(
            Signal(
                detector="ollama",
                signal_type="ollama_banner",
                description=f"'Ollama is running' at {http.url('/')}",
                confidence="medium",
                evidence={**ev, "url": http.url("/")},
                framework="ollama",
                agent_type="llm_server",
            )
        )
    return signals
