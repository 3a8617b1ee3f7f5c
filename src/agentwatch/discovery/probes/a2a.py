"""A2A agent cards at ``/.well-known/agent-card.json`` (current) and ``/.well-known/agent.json`` (older)."""

from __future__ import annotations

from typing import Any

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.signals import Service, Signal

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")


def card_fields(card: Any) -> tuple[int, list[str]]:
    """How many of the card's defining fields are present and well-typed, and which."""
    if not isinstance(card, dict) or not isinstance(card.get("name"), str):
        return 0, []
    checks = {
        "name": True,
        "url": isinstance(card.get("url"), str) or isinstance(card.get("supportedInterfaces"), list),
        "skills": isinstance(card.get("skills"), list),
        "capabilities": isinstance(card.get("capabilities"), dict),
        "modes": isinstance(card.get("defaultInputModes"), list) or isinstance(card.get("defaultOutputModes"), list),
        "version": isinstance(card.get("version"), str) or isinstance(card.get("protocolVersion"), str),
    }
    present = [k for k, ok in checks.items() if ok]
    return len(present), present


async def fetch_card(http: Http) -> tuple[str, dict[str, Any]] | None:
    for path in CARD_PATHS:
        reply = await http.get(path)
        if reply is None or reply.status != 200:
            continue
        doc = reply.json()
        score, _ = card_fields(doc)
        if score >= 3:
            return path, doc
    return None


async def probe(http: Http, service: Service) -> list[Signal]:
    found = await fetch_card(http)
    if found is None:
        return []
    path, card = found
    score, present = card_fields(card)
    listed = card.get("skills") if isinstance(card.get("skills"), list) else []  # a card need not list skills
    skills = [str(s.get("name") or s.get("id"))[:200] for s in listed if isinstance(s, dict)][:50]
    url = http.url(path)
    service.metadata["a2a_card"] = {
        "name": str(card.get("name"))[:200],
        "description": str(card.get("description", ""))[:1000],
        "version": card.get("version"),
        "protocol_version": card.get("protocolVersion"),
        "url": str(card.get("url", ""))[:500],
        "skills": skills,
        "path": path,
    }
    return [
        Signal(
            detector="a2a",
            signal_type="a2a_agent_card",
            description=f"A2A agent card for {str(card.get('name'))[:100]!r} at {url} ({len(skills)} skills)",
            confidence="high" if score >= 5 else "medium",
            evidence={"host": service.host, "port": service.port, "url": url, "fields": present, "skills": skills},
            framework="a2a",
            agent_type="a2a_agent",
        )
    ]
