"""Registers the relay's end in each server process (its figures are in ``/api/v1/health``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    from agentwatch.processes.link import SiblingLink

    registry.lifecycle.register("siblings", SiblingLink)
