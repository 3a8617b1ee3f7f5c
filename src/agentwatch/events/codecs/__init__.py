"""Codecs: one per wire format, each turning request bytes into canonical Events.

A codec is registered at the ``codecs`` extension point under its format name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agentwatch.events.model import Event


@dataclass
class Rejection:
    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class Codec(Protocol):
    name: str

    def decode(self, body: bytes, content_type: str) -> Decoded:
        """Parse a request body; valid events and per-item rejections, never an exception."""
        ...
