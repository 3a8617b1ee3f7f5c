"""Registers the hunt-as-code capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The hunt schedule (a lifecycle component) and the ``/api/v1/hunts`` routes."""
    from agentwatch.hunts import api
    from agentwatch.hunts.schedule import HuntSchedule

    registry.lifecycle.register("hunts", HuntSchedule)
    registry.routers.register("hunts", api.router)
