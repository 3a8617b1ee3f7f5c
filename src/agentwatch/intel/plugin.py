"""Registers the intel capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def _matcher(aw: Any) -> Any:
    from agentwatch.intel.matcher import matcher_of

    return matcher_of(aw)


def register(registry: Registry) -> None:
    """The indicator matcher (a pipeline detector), the feed schedule and the ``/api/v1/intel`` routes."""
    from agentwatch.intel import api, feeds_api
    from agentwatch.intel.feed_schedule import FeedSchedule

    registry.detectors.register("intel", _matcher)
    registry.lifecycle.register("intel_feeds", FeedSchedule)
    registry.routers.register("intel", api.router)
    registry.routers.register("intel_feeds", feeds_api.router)


def install_cli(app: typer.Typer) -> None:
    """``agentwatch intel import``."""
    from agentwatch.intel.cli import app as intel_app

    app.add_typer(intel_app, name="intel")
