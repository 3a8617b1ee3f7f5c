"""Threat hunts asked in words (Seerflow's ``POST /hunt``).

A question that names an entity (an entity UUID, an address, or a host, domain or user name the
entity index holds) is answered without the model: that entity's timeline, related entities and
alerts. Any other question goes to the LLM backend, which is asked only to translate it into
the filters of agentwatch's event search, as one JSON object; the answer is checked against
:class:`HuntFilters` (no other key, every value bounded) before anything is searched, and a
model answering anything else is a failed backend call. The search itself is agentwatch's own:
the model never writes a query the store runs.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentwatch.alerts.explain import LlmFailed
from agentwatch.events.entities import canonical_address, canonical_domain
from agentwatch.events.model import iso

MAX_ENTITY_TEXT = 253
WINDOW_MAX_MINUTES = 90 * 24 * 60
TEMPLATE = r"^[a-z][a-z0-9_]*(\.[a-z0-9_*]+)*$"
SOURCE = r"^[a-z0-9_.-]+$"
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_ECHO = 64  # characters of a refused key shown back

SYSTEM_PROMPT = """You translate a security analyst's threat-hunting question into the filters of
agentwatch's event search. agentwatch stores OISP events from AI agents: event types such as
ai.request, ai.response, agent.tool_call, agent.tool_result, process.exec, file.open, file.write,
network.connect, network.dns (a family such as ai.* or network.* matches all of its types).

Answer with one JSON object and nothing else. Its keys, each optional:
  "template_id": an event type or family (e.g. "agent.tool_call", "network.*")
  "window_minutes": how far back from now to search, in minutes (1 to 129600)
  "entity": a host name, IP address, domain, user or process the events must name
  "q": a short text the events must contain (case-insensitive substring)
  "severity": the least event severity, 0 to 10
  "source": the wire format the events came in ("oisp", "aop", "otlp")
Leave out what the question does not ask for. Never add other keys."""


class HuntFilters(BaseModel):
    """What the model may answer: the event search's own filters, each bounded."""

    model_config = ConfigDict(extra="forbid")
    template_id: str | None = Field(None, max_length=128, pattern=TEMPLATE)
    window_minutes: int | None = Field(None, ge=1, le=WINDOW_MAX_MINUTES, strict=True)
    entity: str | None = Field(None, min_length=1, max_length=512)
    q: str | None = Field(None, min_length=1, max_length=256)
    severity: int | None = Field(None, ge=0, le=10, strict=True)
    source: str | None = Field(None, max_length=32, pattern=SOURCE)

    @field_validator("entity", "q")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    def since(self, now: float) -> float | None:
        return None if self.window_minutes is None else now - self.window_minutes * 60


def entity_words(question: str) -> list[tuple[str, str]]:
    """(kind, value) pairs a question made of one entity could name: an address as its kind, a
    single word as a host, domain or user; nothing for a question of several words."""
    text = question.strip()
    if not text or len(text) > MAX_ENTITY_TEXT or any(ch.isspace() for ch in text):
        return []
    address = canonical_address(text)
    if address is not None:
        return [("ip", address)]
    return [("host", text), ("domain", canonical_domain(text)), ("user", text)]


def messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


def filters_of(answer: str) -> HuntFilters:
    """The model's answer as filters; raises :class:`LlmFailed` naming what was wrong."""
    start, end = answer.find("{"), answer.rfind("}")  # the outermost braces (linear, whatever the text)
    if start < 0 or end < start:
        raise LlmFailed("llm: the answer holds no JSON object of hunt filters")
    try:
        doc = orjson.loads(answer[start : end + 1])
    except orjson.JSONDecodeError:
        raise LlmFailed("llm: the answer's hunt filters are not valid JSON") from None
    try:
        return HuntFilters.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])[:MAX_ECHO] or "filters"  # a key the model made up
        raise LlmFailed(f"llm: the answer's hunt filters are refused ({where}: {err['msg']})") from None


def applied(filters: HuntFilters, now: float | None = None) -> dict[str, Any]:
    """The filters as the answer shows them (the window as a time)."""
    doc = filters.model_dump(exclude_none=True)
    since = filters.since(time.time() if now is None else now)
    if since is not None:
        doc["since"] = iso(since)
    return doc
