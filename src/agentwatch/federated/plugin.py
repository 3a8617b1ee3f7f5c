"""Registers the federated query capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The ``/api/v1/federated`` routes."""
    from agentwatch.federated import api

    registry.routers.register("federated", api.router)
