"""The canonical Event and the codecs that turn wire formats into it."""

from agentwatch.events.model import Event, EventError

__all__ = ["Event", "EventError"]
