"""Registers the copilot's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The ``/api/v1/copilot`` routes."""
    from agentwatch.soc.copilot import api, schema  # noqa: F401  (schema: its table on the metadata)

    registry.routers.register("copilot", api.router)
