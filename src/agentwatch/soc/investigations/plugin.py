"""Registers the AI investigator's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The investigator (a lifecycle component) and the Investigations & Ledger routes."""
    from agentwatch.soc.investigations import api, schema  # noqa: F401  (schema: its tables on the metadata)
    from agentwatch.soc.investigations.service import Investigator

    registry.lifecycle.register("investigations", Investigator)
    registry.routers.register("investigations", api.router)
