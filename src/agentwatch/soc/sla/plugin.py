"""Registers the SLA capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The SLA watch (a lifecycle part) and the ``/api/v1/sla`` routes."""
    from agentwatch.soc.sla import api, schema  # noqa: F401  (schema: its tables on the metadata)
    from agentwatch.soc.sla.watch import SlaWatch

    registry.lifecycle.register("sla", SlaWatch)
    registry.routers.register("sla", api.router)
