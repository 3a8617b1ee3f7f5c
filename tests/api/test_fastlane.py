"""The fast lane serves marked data-plane routes with the same guard, errors and audit as the router."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request

from agentwatch.api.fastlane import FastLaneMiddleware, fast_lane, lanes_of
from agentwatch.api.security import require


def lane_table(app: FastAPI):
    (mw,) = [m for m in app.user_middleware if m.cls is FastLaneMiddleware]
    return mw.kwargs["lanes"]


def test_the_data_plane_routes_are_in_the_lane(server):
    lanes = lane_table(server.server.config.app)
    assert set(lanes.exact) == {("POST", "/api/v1/ingest"), ("POST", "/events")}
    gateway = {(m, "/gateway/") for m in ("GET", "POST", "PUT", "PATCH", "DELETE")}
    assert {(m, prefix) for m, prefix, _ in lanes.patterned} == gateway | {("GET", "/sessions/")}


def test_a_patterned_lane_sets_the_path_parameters():
    router = APIRouter()

    @router.get("/items/{kind}/{rest:path}", dependencies=[require("events:read")])
    @fast_lane
    async def item(request: Request) -> dict:
        return dict(request.path_params)

    app = FastAPI()
    app.include_router(router)
    table = lanes_of(app)
    scope = {"type": "http", "method": "GET", "path": "/items/a/b/c", "root_path": ""}
    lane = table.find(scope)
    assert lane is not None and scope["path_params"] == {"kind": "a", "rest": "b/c"}
    assert table.find({"type": "http", "method": "POST", "path": "/items/a/b", "root_path": ""}) is None
    assert table.find({"type": "http", "method": "GET", "path": "/other", "root_path": ""}) is None


def test_a_marked_route_with_more_than_the_request_is_refused():
    router = APIRouter()

    @router.post("/x", dependencies=[require("events:write")])
    @fast_lane
    async def with_query(request: Request, limit: int = 10) -> dict:
        return {}

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match="only the request"):
        lanes_of(app)


def test_a_marked_route_without_a_guard_is_refused():
    router = APIRouter()

    @router.post("/y")
    @fast_lane
    async def unguarded(request: Request) -> dict:
        return {}

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match="guard"):
        lanes_of(app)


def test_lane_errors_keep_the_api_error_shape(server):
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=b"   ")
        assert r.status_code == 400
        assert r.json() == {"error": {"code": "INVALID_REQUEST", "message": "body: is empty", "details": None}}
        r = c.post("/events", content=b'{"spec": "aop/1.0"}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_REQUEST"


def test_lane_requests_are_audited_under_their_route(server):
    with server.client() as c:
        assert c.post("/api/v1/ingest", json={"event_type": "process.exec", "data": {}}).status_code == 200
        entries = c.get("/api/v1/audit", params={"action": "POST /api/v1/ingest"}).json()["entries"]
    assert [(e["action"], e["status"], e["target"]) for e in entries] == [
        ("POST /api/v1/ingest", 200, "/api/v1/ingest")
    ]
