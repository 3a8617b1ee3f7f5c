"""The OISP v0.1 codec: envelopes at the root, payload under ``data``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agentwatch.events.codecs import Decoded, Rejection
from agentwatch.events.codecs.framing import split_items
from agentwatch.events.model import EventError
from agentwatch.events.normalize import TypeValidators, normalize


@dataclass
class OispCodec:
    type_validator: TypeValidators
    max_items: int = 10_000
    max_event_bytes: int = 1024 * 1024
    name: str = "oisp"
    clock: Callable[[], float] = time.time

    def decode(self, body: bytes, content_type: str = "application/json") -> Decoded:
        out = Decoded()
        now = self.clock()
        for index, item, raw, error in split_items(body, max_items=self.max_items):
            if error is not None:
                out.rejected.append(Rejection(index, "body", error))
                continue
            if raw is not None and len(raw) > self.max_event_bytes:
                out.rejected.append(Rejection(index, "event", f"larger than {self.max_event_bytes} bytes"))
                continue
            try:
                event = normalize(item, type_validator=self.type_validator, received_at=now)
            except EventError as exc:
                out.rejected.append(Rejection(index, exc.field, exc.rule))
                continue
            # an item of a JSON array has no line of its own: its stored form is measured instead
            if raw is None and len(event.to_json()) > self.max_event_bytes:
                out.rejected.append(Rejection(index, "event", f"larger than {self.max_event_bytes} bytes"))
                continue
            out.events.append(event)
        return out
