"""One server-wide budget of request-body bytes held in memory at once.

Each route caps its own body (10 MiB for ingest), but nothing bounded their sum: 200 clients
each sending a 10 MiB ingest body at the same time made the server hold 2 GiB. Here every
request body read through :mod:`agentwatch.api.bodies` is counted against
``ingest.max_body_bytes_in_flight``, shared by every listener of one server (the main one and
the AOP one):

- bytes are counted as they arrive, not as declared: a client that declares 10 MiB and sends
  a byte a second holds a byte a second of the budget, so slow clients cannot fill it without
  sending it; a gzip body's inflated bytes replace the compressed ones they are decoded from;
- a request that would pass the budget is answered 503 with ``Retry-After`` before anything
  it carries is submitted (a body that could never fit, even alone, is answered 413);
- the bytes are given back once the request has been answered, whatever happened: the
  client went away, the route refused the body, or the route raised.

The check is two additions and a comparison per read: the event loop runs one coroutine at a
time, so no lock is needed. Requests that never read a body (reads, WebSockets, a 401 before
the body) never touch the budget.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from starlette.types import ASGIApp, Receive, Scope, Send

from agentwatch.api.errors import TooLarge, Unavailable

SCOPE_KEY = "agentwatch.body_budget"
RETRY_AFTER_S = 1  # bodies in flight are usually answered within a second or two


class BodyBudget:
    """The bytes held now by every request of one server, and the most it may hold."""

    __slots__ = ("limit", "held", "refusals", "__weakref__")

    def __init__(self, limit: int, refusals: Any = None) -> None:
        self.limit = limit
        self.held = 0
        self.refusals = refusals  # a Prometheus counter of 503 answers, or None


class HeldBody:
    """What one request holds of the budget; given back whole when the request is answered."""

    __slots__ = ("budget", "held")

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int) -> None:
        """Count ``size`` more bytes for this request, or refuse it (413 alone, 503 crowded)."""
        budget = self.budget
        if budget.held + size > budget.limit:
            self._refuse(size)
        budget.held += size
        self.held += size

    def could_hold(self, size: int) -> None:
        """Refuse now (413) a declared length the budget could not hold even alone."""
        if size > self.budget.limit:
            self._refuse(size)

    def give_back(self, size: int) -> None:
        size = min(size, self.held)
        self.budget.held -= size
        self.held -= size

    def release(self) -> None:
        self.budget.held -= self.held
        self.held = 0

    def _refuse(self, size: int) -> None:
        limit = self.budget.limit
        if self.held + size > limit:  # would not fit even with every other request gone
            raise TooLarge(f"body: larger than the server's budget for request bodies held at once ({limit} bytes)")
        if self.budget.refusals is not None:
            self.budget.refusals.inc()
        raise Unavailable(
            f"body: the server holds too many request bodies at once (budget {limit} bytes); retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


def held_body(scope: Scope) -> HeldBody | None:
    """The request's share of the budget (None in an app built without the middleware)."""
    return scope.get(SCOPE_KEY)


class BodyBudgetMiddleware:
    """Gives each HTTP request its share of the budget and takes it back once it is answered."""

    def __init__(self, app: ASGIApp, budget: BodyBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = scope[SCOPE_KEY] = HeldBody(self.budget)
        try:
            await self.app(scope, receive, send)
        finally:
            held.release()


_budgets: WeakKeyDictionary[Any, BodyBudget] = WeakKeyDictionary()


def budget_of(aw: Any) -> BodyBudget:
    """The one budget of the server ``aw`` runs: every listener's app shares it."""
    budget = _budgets.get(aw)
    if budget is None:
        budget = _budgets[aw] = BodyBudget(aw.settings.ingest.max_body_bytes_in_flight, aw.metrics.bodies_over_budget)
    return budget


def install(app: Any, aw: Any) -> None:
    """The ``middleware`` extension: count the request bodies of ``app`` against the server's budget."""
    app.add_middleware(BodyBudgetMiddleware, budget=budget_of(aw))
