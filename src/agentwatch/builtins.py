"""The built-in parts, registered exactly as an external extension would register its own."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agentwatch.events import oisp_schema
from agentwatch.events.normalize import oisp_data_validator

if TYPE_CHECKING:
    from agentwatch.extensions import Registry

# OISP event types without a payload schema in v0.1: their data must be an object.
SCHEMALESS_OISP_TYPES = ("capture.raw",)

# Each capability registers its own parts from its own plugin module.
CAPABILITIES = (
    "agentwatch.soc.plugin",
    "agentwatch.detect.plugin",
    "agentwatch.sessions.plugin",
    "agentwatch.discovery.plugin",
    "agentwatch.capture.plugin",
    "agentwatch.intel.plugin",
    "agentwatch.alerts.intake.plugin",
    "agentwatch.ueba.plugin",
    "agentwatch.soc.playbooks.plugin",
    "agentwatch.soc.honeytokens.plugin",
    "agentwatch.hunts.plugin",
    "agentwatch.purple.plugin",
    "agentwatch.soc.sla.plugin",
    "agentwatch.soc.oncall.plugin",
    "agentwatch.soc.passkeys.plugin",
    "agentwatch.soc.sso.plugin",
    "agentwatch.soc.approvals.plugin",
    "agentwatch.soc.copilot.plugin",
    "agentwatch.soc.push.plugin",
    "agentwatch.compliance.plugin",
    "agentwatch.soc.investigations.plugin",
    "agentwatch.federated.plugin",
    "agentwatch.marketplace.plugin",
    "agentwatch.web.plugin",
    "agentwatch.processes.plugin",
)


def register(registry: Registry) -> None:
    from agentwatch.api import body_budget, ingest, live_oisp, oisp, ops, v1_entities
    from agentwatch.entities.index import EntityIndexStage
    from agentwatch.events.codecs.oisp import OispCodec
    from agentwatch.maintenance import Maintenance
    from agentwatch.pipeline.bus_nats import NatsBus
    from agentwatch.pipeline.stages import EntityStage, ProcessFilterStage, TraceStage

    for event_type in [*oisp_schema.variant_titles(), *SCHEMALESS_OISP_TYPES]:
        registry.event_types.register(event_type, oisp_data_validator(event_type))

    registry.codecs.register(
        "oisp",
        lambda app: OispCodec(
            type_validator=app.type_validator,
            max_items=app.settings.ingest.max_events_per_request,
            max_event_bytes=app.settings.ingest.max_event_bytes,
        ),
    )
    registry.stages.register("process_filter", lambda app: ProcessFilterStage(app.filters))
    registry.stages.register("entities", lambda app: EntityStage())
    registry.stages.register("entity_index", lambda app: EntityIndexStage())
    registry.stages.register("traces", lambda app: TraceStage())
    registry.lifecycle.register("bus", NatsBus)
    registry.lifecycle.register("maintenance", Maintenance)

    registry.routers.register("ops", ops.router)
    registry.routers.register("ingest", ingest.router)
    registry.routers.register("oisp", oisp.router)
    registry.routers.register("oisp_live", live_oisp.router)
    registry.routers.register("v1_entities", v1_entities.router)
    registry.health.register("oisp", oisp.health_fragment)
    # every listener's app counts its request bodies against one budget (api.body_budget)
    registry.middleware.register("body_budget", body_budget.install)

    for module in CAPABILITIES:
        importlib.import_module(module).register(registry)
