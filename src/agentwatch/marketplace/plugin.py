"""Registers the marketplace's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The ``/api/v1/marketplace`` routes and ``/marketplace/index.json``."""
    from agentwatch.marketplace import api, schema  # noqa: F401  (schema: its table on the metadata)

    registry.routers.register("marketplace", api.router)
