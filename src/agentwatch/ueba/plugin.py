"""Registers the UEBA capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def _detector(aw: Any) -> Any:
    from agentwatch.ueba.detector import detector_of

    return detector_of(aw)


def register(registry: Registry) -> None:
    """The baseline detector (a pipeline detector), its keeper (load, persist, anomaly store)
    and the ``/api/v1/ueba``, entity baseline and anomaly timeline routes."""
    from agentwatch.ueba import api, api_seerflow
    from agentwatch.ueba.keeper import UebaKeeper

    registry.detectors.register("ueba", _detector)
    registry.lifecycle.register("ueba", UebaKeeper)
    registry.routers.register("ueba", api.router)
    registry.routers.register("ueba_seerflow", api_seerflow.router)
