"""Registers the approvals capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The expiry watch (a lifecycle part) and the ``/api/v1/approvals`` routes."""
    from agentwatch.soc.approvals import api, schema  # noqa: F401  (schema: its table on the metadata)
    from agentwatch.soc.approvals.watch import ApprovalWatch

    registry.lifecycle.register("approvals", ApprovalWatch)
    registry.routers.register("approvals", api.router)
