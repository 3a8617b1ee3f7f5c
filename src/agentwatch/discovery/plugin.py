"""Registers the discovery capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """Add this capability's codecs, stages, detectors, routers, lifecycle parts and health."""
    from agentwatch.notify import register_outputs

    register_outputs(registry)


def install_cli(app: typer.Typer) -> None:
    """Add this capability's commands to the `agentwatch` command."""
