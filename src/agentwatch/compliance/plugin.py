"""Registers the compliance capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The ``/api/v1/compliance`` routes (the library is checked here, at start, not on first use)."""
    from agentwatch.compliance import api
    from agentwatch.compliance.library import library

    library()
    registry.routers.register("compliance", api.router)
