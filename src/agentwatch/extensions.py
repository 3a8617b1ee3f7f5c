"""Every extension point of agentwatch, in one place.

A built-in part registers through exactly the same call an external package
would use. External packages expose a module under the entry-point group
``agentwatch.extensions``; the module must define ``register(registry)``.

Extension points (``Registry`` attributes):

- ``codecs``:        wire format name -> :class:`agentwatch.events.codecs.Codec` (bytes -> Events)
- ``event_types``:   event type name -> payload validator (``data`` -> list of problems)
- ``stages``:        ordered pipeline stages run on every micro-batch before commit
- ``detectors``:     detection rules/engines fed every committed batch; they return findings
- ``stream_filters``: live-stream filter name -> predicate factory for WebSocket/SSE subscribers
- ``alert_outputs``: output kind -> notifier class (webhook, slack, teams, pagerduty, ...)
- ``routers``:       API surfaces (FastAPI routers) mounted by the app factory
- ``lifecycle``:     components started with the server and stopped (drained) on shutdown
- ``health``:        contributors merged into the shared health documents (``/api/health`` ...)
- ``middleware``:    callables ``(fastapi_app, aw) -> None`` that add ASGI middleware (auth, audit, limits)

Stages and detectors run on the event loop's own thread (small SQLite batches, see
``Pipeline._run_process``) or on the pipeline's work thread, where large request bodies wait
behind them: they compute and never wait on the network or sleep.

Lifecycle factories are called with the :class:`agentwatch.app.Agentwatch` while it is built;
they may attach services to it (the auth part sets ``aw.auth``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")

ENTRY_POINT_GROUP = "agentwatch.extensions"


class DuplicateExtension(ValueError):
    """Two parts registered the same name at one extension point."""


@dataclass
class ExtensionPoint(Generic[T]):
    """A named collection of parts; names are unique, order of registration is kept."""

    name: str
    doc: str
    _items: dict[str, T] = field(default_factory=dict)

    def register(self, key: str, item: T, *, replace: bool = False) -> T:
        if key in self._items and not replace:
            raise DuplicateExtension(f"{self.name}: {key!r} is already registered")
        self._items[key] = item
        return item

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def __getitem__(self, key: str) -> T:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def values(self) -> list[T]:
        return list(self._items.values())


class Registry:
    """The set of extension points of one running agentwatch."""

    def __init__(self) -> None:
        self.codecs: ExtensionPoint[Any] = ExtensionPoint("codecs", "wire format -> canonical Events")
        self.event_types: ExtensionPoint[Callable[[dict], list[str]]] = ExtensionPoint(
            "event_types", "event type -> validator of its data payload"
        )
        self.stages: ExtensionPoint[Any] = ExtensionPoint("stages", "pipeline stages run before commit")
        self.detectors: ExtensionPoint[Any] = ExtensionPoint("detectors", "detection engines fed committed batches")
        self.stream_filters: ExtensionPoint[Any] = ExtensionPoint(
            "stream_filters", "live-stream filter name -> predicate factory"
        )
        self.alert_outputs: ExtensionPoint[Any] = ExtensionPoint("alert_outputs", "alert notifiers by kind")
        self.routers: ExtensionPoint[Any] = ExtensionPoint("routers", "API surfaces mounted by the app factory")
        self.lifecycle: ExtensionPoint[Any] = ExtensionPoint(
            "lifecycle", "factories of components started and stopped with the server"
        )

        self.health: ExtensionPoint[Any] = ExtensionPoint(
            "health", "name -> callable(app) returning a fragment of the health document"
        )

        self.middleware: ExtensionPoint[Any] = ExtensionPoint(
            "middleware", "callable(fastapi_app, aw) adding ASGI middleware"
        )

    def points(self) -> list[ExtensionPoint[Any]]:
        return [v for v in vars(self).values() if isinstance(v, ExtensionPoint)]


def load_registry(*, external: bool = True) -> Registry:
    """A registry with the built-in parts, then any installed external ones."""
    from agentwatch import builtins

    registry = Registry()
    builtins.register(registry)
    if external:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            module = ep.load()
            module.register(registry)
    return registry
