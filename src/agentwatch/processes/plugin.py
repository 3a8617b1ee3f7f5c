"""Registers the relay's end in each server process, and its part of the health document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def _health(aw: Any) -> dict[str, Any]:
    link = aw.components.get("siblings")
    return {"processes": link.health()} if link is not None else {}


def register(registry: Registry) -> None:
    from agentwatch.processes.link import SiblingLink

    registry.lifecycle.register("siblings", SiblingLink)
    registry.health.register("processes", _health)
