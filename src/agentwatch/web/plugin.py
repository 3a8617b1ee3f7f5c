"""Registers the dashboard's routes at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """``/`` (a redirect), ``/ui`` and ``/ui/{asset}``: the dashboard's files, public (they hold no data)."""
    from agentwatch.web import routes

    registry.routers.register("web", routes.router)
