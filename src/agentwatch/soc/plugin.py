"""Registers the soc capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The access layer: authenticator + audit log (lifecycle), routes, and two middlewares;
    the AiSOC cases routes."""
    from agentwatch.api import audit as audit_api
    from agentwatch.api import auth as auth_api
    from agentwatch.soc.auth.middleware import AccessMiddleware, AuditMiddleware
    from agentwatch.soc.auth.service import AuthService
    from agentwatch.soc.cases import api as cases_api

    registry.lifecycle.register("auth", lambda aw: AuthService(aw))
    registry.routers.register("auth", auth_api.router)
    registry.routers.register("audit", audit_api.router)
    registry.routers.register("cases", cases_api.router)
    # add_middleware wraps what is already there: the one registered last runs first.
    registry.middleware.register("audit", lambda app, aw: app.add_middleware(AuditMiddleware, service=aw.auth))
    registry.middleware.register("access", lambda app, aw: app.add_middleware(AccessMiddleware, service=aw.auth))


def install_cli(app: typer.Typer) -> None:
    """``agentwatch users``, ``agentwatch keys``, ``agentwatch audit`` and ``agentwatch investigations``."""
    from agentwatch.soc.auth.cli import install
    from agentwatch.soc.investigations.cli import install as install_investigations

    install(app)
    install_investigations(app)
