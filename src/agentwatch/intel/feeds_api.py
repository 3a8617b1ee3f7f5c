"""``/api/v1/intel/feeds``: the status of each configured feed, and a sync on demand."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import ApiError, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.intel import feeds
from agentwatch.intel.feed_schedule import schedule_of

router = APIRouter(prefix="/api/v1/intel", tags=["intel"])


@router.get("/feeds", dependencies=[require("alerts:read"), only_query()])
async def list_feeds(request: Request) -> dict[str, Any]:
    """Every configured feed with its last attempt, last success, counts and last error."""
    aw = request.app.state.aw
    found = [await run_in_threadpool(feeds.status, aw.engine, f) for f in aw.settings.intel.feeds]
    return {"feeds": found}


@router.post("/feeds/{feed_id}/sync", dependencies=[require("intel:write"), only_query()])
async def sync_feed(request: Request, feed_id: str) -> dict[str, Any]:
    """Fetch the feed now; its status. 404 for a feed not configured, 502 when the fetch failed,
    507 when its indicators do not fit (no indicator changed either way)."""
    schedule = schedule_of(request.app.state.aw)
    feed = schedule.feed(feed_id) if len(feed_id) <= 64 else None
    if feed is None:
        raise NotFound("feed not configured (intel.feeds)", {"feed_id": feed_id[:64]})
    try:
        return await schedule.sync(feed)
    except feeds.StoreFull as exc:
        raise ApiError(f"feed {feed.id}: {exc}", status=507, code="INSUFFICIENT_STORAGE") from None
    except feeds.FeedError as exc:
        raise ApiError(f"feed {feed.id}: {exc}", {"feed_id": feed.id}, status=502, code="BAD_GATEWAY") from None
