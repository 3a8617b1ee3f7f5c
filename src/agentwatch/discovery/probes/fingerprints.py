"""Data-driven HTTP fingerprints of agent frameworks and LLM servers (``signatures.json``)."""

from __future__ import annotations

import asyncio
import json
from functools import cache
from importlib import resources
from typing import Any

from agentwatch.discovery.httpio import Http, Reply
from agentwatch.discovery.probes.negative import distinct
from agentwatch.discovery.signals import GRADES, Service, Signal

CONTENT_MATCHERS = ("json", "json_keys_all", "json_keys_any", "body_any", "header_any")


@cache
def signatures() -> list[dict[str, Any]]:
    text = resources.files("agentwatch.discovery.probes").joinpath("signatures.json").read_text()
    doc = json.loads(text)
    frameworks = doc["frameworks"]
    for fw in frameworks:
        for rule in fw["rules"]:
            if rule["grade"] not in GRADES or not rule["path"].startswith("/"):
                raise ValueError(f"signatures.json: bad rule in {fw['name']}: {rule}")
    return frameworks


def matches(rule: dict[str, Any], reply: Reply) -> bool:
    if "status" in rule and reply.status not in rule["status"]:
        return False
    parsed: Any = None
    if rule.get("json") or "json_keys_all" in rule or "json_keys_any" in rule:
        parsed = reply.json()
        if parsed is None:
            return False
    if "json_keys_all" in rule and not (isinstance(parsed, dict) and all(k in parsed for k in rule["json_keys_all"])):
        return False
    if "json_keys_any" in rule and not (isinstance(parsed, dict) and any(k in parsed for k in rule["json_keys_any"])):
        return False
    if "body_any" in rule:
        body = reply.text.lower()
        if not any(s.lower() in body for s in rule["body_any"]):
            return False
    if "header_any" in rule:
        for name, needles in rule["header_any"].items():
            value = reply.headers.get(name)
            if value is None or not any(n.lower() in value.lower() for n in needles):
                return False
    return True


async def _check(http: Http, service: Service, fw: dict[str, Any], rule: dict[str, Any]) -> Signal | None:
    reply = await http.get(rule["path"])
    if reply is None or not matches(rule, reply):
        return None
    verified = any(m in rule for m in CONTENT_MATCHERS)
    if not verified and not await distinct(http, rule["path"], reply.status):
        return None
    url = http.url(rule["path"])
    return Signal(
        detector="endpoint_prober",
        signal_type="framework_endpoint_match",
        description=f"{fw['framework']} endpoint active at {url}",
        confidence=rule["grade"],
        evidence={
            "host": service.host,
            "port": service.port,
            "framework": fw["framework"],
            "path": rule["path"],
            "url": url,
            "status": reply.status,
        },
        framework=fw["framework"],
        agent_type=fw["agent_type"],
        content_verified=verified,
    )


async def probe(http: Http, service: Service) -> list[Signal]:
    jobs = [_check(http, service, fw, rule) for fw in signatures() for rule in fw["rules"]]
    return [s for s in await asyncio.gather(*jobs) if s is not None]
