"""Registers the purple-team capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def _executions(aw: Any) -> Any:
    from agentwatch.purple.executions import Executions

    return Executions(aw)


def register(registry: Registry) -> None:
    """The executions part (runs of atomic tests) and the ``/api/v1/purple-team`` routes."""
    from agentwatch.purple import api, schema, tabletop_api  # noqa: F401  (schema: tables on the shared metadata)

    registry.lifecycle.register("purple", _executions)
    registry.routers.register("purple_team", api.router)
    registry.routers.register("purple_tabletop", tabletop_api.router)
