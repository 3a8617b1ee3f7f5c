"""Registers the sessions capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from agentwatch.extensions import Registry


def _stage(aw: Any) -> Any:
    from agentwatch.sessions.derive import RowCache, SessionStage

    # one writer only: with several pipeline workers on one database a row cache would go stale
    standalone = getattr(aw.settings.pipeline, "role", "standalone") == "standalone"
    aw.aop_session_rows = RowCache() if standalone else None
    return SessionStage(aw.aop_session_rows)


def _rules(aw: Any) -> Any:
    from agentwatch.sessions.rules import SessionRules

    standalone = getattr(aw.settings.pipeline, "role", "standalone") == "standalone"
    aw.aop_rules = SessionRules(aw.engine, aw.settings.aop, keep_cache=standalone)
    return aw.aop_rules


def _codec(aw: Any) -> Any:
    from agentwatch.sessions.codec import AopCodec

    s = aw.settings.aop
    return AopCodec(
        max_items=s.max_batch_items, max_event_bytes=s.max_event_bytes, low_confidence_below=s.low_confidence_below
    )


def _service(aw: Any) -> Any:
    from agentwatch.sessions.service import SessionService

    return SessionService(aw)


def _health(aw: Any) -> dict[str, Any]:
    from agentwatch.sessions.stream import stream_places

    return {"aop": {"stream_clients": stream_places(aw).taken}}


def register(registry: Registry) -> None:
    """Add this capability's codecs, stages, detectors, routers, lifecycle parts and health."""
    from agentwatch.api import aop
    from agentwatch.sessions import codec, schema, wire  # noqa: F401  (schema: tables on the shared metadata)

    for aop_type in wire.EVENT_TYPES:
        registry.event_types.register(wire.TYPE_PREFIX + aop_type, codec.data_validator(aop_type))
    registry.codecs.register("aop", _codec)
    registry.stages.register("aop_sessions", _stage)
    registry.detectors.register("session_rules", _rules)
    registry.lifecycle.register("aop_sessions", _service)
    registry.routers.register("aop", aop.router)
    registry.health.register("aop", _health)


def install_cli(app: typer.Typer) -> None:
    """Add this capability's commands to the `agentwatch` command."""
    from agentwatch.sessions.cli import app as sessions_app

    app.add_typer(sessions_app, name="sessions")
