"""Registers the push capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The push service (a lifecycle part), the ``push`` alert output and the ``/api/v1/push`` routes."""
    from agentwatch.soc.push import api, schema  # noqa: F401  (schema: its table on the metadata)
    from agentwatch.soc.push.service import PushOutput, PushService

    registry.lifecycle.register("push", PushService)
    registry.alert_outputs.register("push", PushOutput)
    registry.routers.register("push", api.router)
