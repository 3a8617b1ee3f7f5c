"""Registers the detect capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def _detector(aw: Any) -> Any:
    from agentwatch.detect.component import engine_of

    return engine_of(aw)


def _component(aw: Any) -> Any:
    from agentwatch.detect.component import DetectionComponent

    return DetectionComponent(aw)


def register(registry: Registry) -> None:
    """The detection engine (pipeline detector + lifecycle part) and the Seerflow /api/v1 routes."""
    from agentwatch.api import (
        v1_alerts,
        v1_attack,
        v1_detections,
        v1_entity_risk,
        v1_events,
        v1_explain,
        v1_hunt,
        v1_rules,
        v1_sigma,
        v1_suggestions,
        v1_system,
        v1_ws,
    )
    from agentwatch.detect.proposals import api as proposals_api
    from agentwatch.detect.rule_sync import RuleSyncComponent

    registry.detectors.register("detection", _detector)
    registry.lifecycle.register("detection", _component)
    registry.lifecycle.register("rule_sync", RuleSyncComponent)
    registry.routers.register("v1_alerts", v1_alerts.router)
    registry.routers.register("v1_attack", v1_attack.router)
    registry.routers.register("v1_entity_risk", v1_entity_risk.router)
    registry.routers.register("v1_explain", v1_explain.router)
    registry.routers.register("v1_hunt", v1_hunt.router)
    registry.routers.register("v1_events", v1_events.router)
    registry.routers.register("v1_sigma", v1_sigma.router)
    registry.routers.register("detection_proposals", proposals_api.router)
    registry.routers.register("v1_rules", v1_rules.router)
    registry.routers.register("v1_detections", v1_detections.router)
    registry.routers.register("v1_suggestions", v1_suggestions.router)
    registry.routers.register("v1_system", v1_system.router)
    registry.routers.register("v1_ws", v1_ws.router)
    registry.health.register("detection", v1_system.health_fragment)


def install_cli(app: typer.Typer) -> None:
    """``agentwatch rules test PATH`` (Sigma corpus report) and ``agentwatch atr test [PATH]``
    (the test cases embedded in ATR-format rules)."""
    from agentwatch.detect.atr.cli import install
    from agentwatch.detect.sigma.cli import install_rules_cli

    install_rules_cli(app)
    install(app)
