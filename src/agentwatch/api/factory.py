"""The app factory: one FastAPI application with every registered API surface."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from agentwatch import __version__
from agentwatch.api import errors
from agentwatch.api.fastlane import FastLaneMiddleware, LaneTable
from agentwatch.api.responses import JSON
from agentwatch.api.security import check_routes
from agentwatch.api.serving import quiet_unretrieved_resets
from agentwatch.app import Agentwatch


def create_app(aw: Agentwatch) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        quiet_unretrieved_resets(asyncio.get_running_loop())
        await aw.start()
        try:
            yield
        finally:
            await aw.stop()

    app = FastAPI(
        title="agentwatch",
        version=__version__,
        description="Security and observability for AI agents",
        default_response_class=JSON,
        lifespan=lifespan,
        # agentwatch exports nothing through the framework's OpenTelemetry bridge; off, it
        # also stops asking the OpenTelemetry API for its providers on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.aw = aw
    errors.install(app)
    lanes = LaneTable()  # filled below, once every router is included
    app.add_middleware(FastLaneMiddleware, lanes=lanes)  # added first: innermost
    if aw.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=aw.settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "X-Agentwatch-Key",
                "Idempotency-Key",
                "Last-Event-ID",
            ],
        )
    for _name, install in aw.registry.middleware.items():
        install(app, aw)
    for _name, router in aw.registry.routers.items():
        app.include_router(router)
    check_routes(app)
    lanes.fill(app)
    return app
