"""Registers the capture capability's parts at the extension points (see agentwatch.extensions).

- lifecycle ``gateway``: the LLM gateway (``/gateway/<route>/...``)
- routers ``gateway`` and ``otlp`` (``POST /v1/traces``, ``POST /v1/logs``)
- codec ``otlp``
- CLI: ``agentwatch sensor`` and ``agentwatch prices refresh``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def _gateway_health(aw: Any) -> dict[str, Any]:
    gw = aw.components.get("gateway")
    return {"capture": {"gateway": gw.health()}} if gw is not None else {}


def register(registry: Registry) -> None:
    """Add this capability's codecs, stages, detectors, routers, lifecycle parts and health."""
    from agentwatch.api import gateway as gateway_api
    from agentwatch.api import otlp as otlp_api
    from agentwatch.capture.gateway.proxy import Gateway
    from agentwatch.events.codecs.otlp import OtlpCodec

    registry.lifecycle.register("gateway", Gateway)
    registry.routers.register("gateway", gateway_api.router)
    registry.routers.register("otlp", otlp_api.router)
    registry.codecs.register(
        "otlp",
        lambda app: OtlpCodec(
            type_validator=app.type_validator,
            max_items=app.settings.ingest.max_events_per_request,
        ),
    )
    registry.health.register("capture", _gateway_health)


def install_cli(app: typer.Typer) -> None:
    """Add this capability's commands to the `agentwatch` command."""
    from agentwatch.capture.cli import install

    install(app)
