"""Registers the passkeys capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The ``/api/v1/passkeys`` routes."""
    from agentwatch.soc.passkeys import api, schema  # noqa: F401  (schema: its tables on the metadata)

    registry.routers.register("passkeys", api.router)
