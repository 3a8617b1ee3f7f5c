"""Registers the honeytokens capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def _detector(aw: Any) -> Any:
    from agentwatch.soc.honeytokens.detector import detector_of

    return detector_of(aw)


def register(registry: Registry) -> None:
    """The honeytoken detector (a pipeline detector), the ``/api/v1/honeytokens`` routes and the
    public tracking route."""
    from agentwatch.soc.honeytokens import api, track

    registry.detectors.register("honeytokens", _detector)
    registry.routers.register("honeytokens_track", track.router)  # before {id}: /track/... is its own
    registry.routers.register("honeytokens", api.router)
