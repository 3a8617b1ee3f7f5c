"""Registers the discovery capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def _health(aw: Any) -> dict[str, Any]:
    manager = aw.components.get("discovery")
    return manager.health() if manager is not None else {}


def register(registry: Registry) -> None:
    """Add this capability's codecs, stages, detectors, routers, lifecycle parts and health."""
    from agentwatch.api import scan
    from agentwatch.discovery.manager import ScanManager
    from agentwatch.notify import register_outputs

    register_outputs(registry)
    registry.routers.register("discovery", scan.router)
    registry.lifecycle.register("discovery", ScanManager)
    registry.health.register("discovery", _health)


def install_cli(app: typer.Typer) -> None:
    """Add this capability's commands to the `agentwatch` command."""
    from agentwatch.discovery.cli import install

    install(app)
