"""Registers AiSOC's alert intake at the extension points (see agentwatch.extensions).

- codec ``ocsf`` (:mod:`agentwatch.events.codecs.ocsf`) and the ``ocsf.*`` event types it
  gives the OCSF events that have no OISP counterpart
- router ``v1_alert_ingest`` (:mod:`agentwatch.alerts.intake.api`): ``POST /api/v1/alerts/submit``,
  ``POST /api/v1/alerts``, ``POST /api/v1/ingest/ocsf``

It adds no command (``install_cli``): its intake is the HTTP API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """Add the OCSF codec, its event types and the alert intake routes."""
    from agentwatch.alerts.intake import api as intake_api
    from agentwatch.events.codecs.ocsf import OcsfCodec, generic_data_validator
    from agentwatch.events.codecs.ocsf_classes import GENERIC_TYPES

    for event_type in GENERIC_TYPES:
        registry.event_types.register(event_type, generic_data_validator)
    registry.codecs.register(
        "ocsf",
        lambda app: OcsfCodec(
            type_validator=app.type_validator,
            max_items=app.settings.ingest.max_events_per_request,
            max_event_bytes=app.settings.ingest.max_event_bytes,
        ),
    )
    registry.routers.register("v1_alert_ingest", intake_api.router)
