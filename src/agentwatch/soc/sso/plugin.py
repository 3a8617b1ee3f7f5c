"""Registers single sign-on's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The ``sso`` component (provider clients, pending sign-ons) and the OIDC and SAML routes."""
    from agentwatch.soc.sso import api, schema  # noqa: F401  (schema: its tables on the metadata)
    from agentwatch.soc.sso.service import SsoService

    registry.lifecycle.register("sso", SsoService)
    registry.routers.register("sso", api.router)
