"""Indicator feeds: lists fetched over HTTP(S) (``intel.feeds``) and kept in step with their source.

A sync fetches the list through the SSRF guard (addresses checked at connect time, redirects
never followed), within the feed's ``timeout_s`` and ``max_bytes``; reads one indicator per
line (``lines``: blank lines and lines starting with ``#`` or ``;`` skipped, anything after the
first blank or ``#`` on a line ignored) or one column of a CSV; then makes the entries the
indicators of source ``feed:<id>``: new ones added, listed ones whose stored fields differ
rewritten, ones the list no longer holds removed, in one transaction. A listed indicator stored
as listed is not written: it keeps its ``updated_at`` and adds no entry to the change log, so
the other nodes re-apply only what a sync really changed (after an unchanged list, nothing). A
feed manages only the indicators it brought: an entry already stored under another source (a
person's indicator made through the API, or another feed's) is left as it is and counted in
``held_by_others``, and is never removed by this feed. Entries that are no indicator are
counted and skipped. A failed sync changes no indicator; its error is kept in the feed's status.

The status of each feed (last attempt, last success, counts, last error) is kept in the
key-value store, so every node answers the same. A feed's URL may carry a credential in its
query: it is never logged nor answered (only scheme, host and path are shown).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import Engine

from agentwatch.events.model import iso
from agentwatch.intel import store
from agentwatch.intel.indicators import BadIndicator, classify, normalize
from agentwatch.intel.settings import FeedSettings
from agentwatch.net.bounded_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_bounded
from agentwatch.net.ssrf import UnresolvedHost, guarded_client
from agentwatch.notify.base import ssrf_refusal
from agentwatch.store import kv

log = structlog.get_logger("agentwatch.intel")

STATUS_PREFIX = "intel:feed:"
MAX_LINE = 4096
COMMENT_MARKS = ("#", ";")


class FeedError(Exception):
    """The list could not be fetched or read; the message says why and never holds the URL's query."""


class StoreFull(FeedError):
    """The feed's indicators would take the store past ``intel.max_indicators``."""


def shown_url(url: str) -> str:
    """The URL without its query, fragment or user info: what logs and answers may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    hidden = " (query hidden)" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{hidden}"


# httpx logs every request's URL at INFO ("HTTP Request: GET <url> ..."): while a feed is
# fetched, the URLs in its records are shown as shown_url shows them.
_FETCHING: ContextVar[bool] = ContextVar("agentwatch_intel_fetching", default=False)


class _ShowFeedUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _FETCHING.get() and isinstance(record.args, tuple):
            record.args = tuple(shown_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_ShowFeedUrls())


FETCH_HEADERS = {"Accept": "text/plain, text/csv, */*", "Accept-Encoding": ACCEPT_ENCODING}


async def fetch(feed: FeedSettings) -> bytes:
    """The list's bytes (decoded of any content encoding), at most ``feed.max_bytes``."""
    fetching = _FETCHING.set(True)
    try:
        async with (
            asyncio.timeout(feed.timeout_s),
            guarded_client(allow_private=feed.allow_private, timeout=feed.timeout_s) as client,
            client.stream("GET", feed.url, headers=FETCH_HEADERS) as response,
        ):
            if response.status_code != 200:
                raise FeedError(f"the feed answered {response.status_code}")
            return await read_bounded(response, feed.max_bytes)
    except BodyTooLarge:
        raise FeedError(f"the list is larger than max_bytes ({feed.max_bytes} bytes)") from None
    except BadEncoding as exc:
        raise FeedError(str(exc)) from None
    except TimeoutError:
        raise FeedError(f"no whole answer within timeout_s ({feed.timeout_s:g} s)") from None
    except httpx.HTTPError as exc:
        refusal = ssrf_refusal(exc)
        if refusal is not None and not isinstance(refusal, UnresolvedHost):
            raise FeedError(f"refused by the SSRF guard ({str(refusal).removeprefix('url: ')})") from None
        raise FeedError(f"cannot reach the feed ({type(exc).__name__})") from None
    finally:
        _FETCHING.reset(fetching)


def entries(body: bytes, fmt: str = "lines", column: int = 0) -> list[str]:
    """The raw entries of a list, in order: one per line (``lines``), or ``column`` of each CSV row.
    Raises :class:`FeedError` for a CSV the reader cannot read (a field longer than it takes:
    an unclosed quote runs to the end of the list)."""
    text = body.decode("utf-8", errors="replace")
    found = []
    if fmt == "csv":
        rows = csv.reader(io.StringIO(text))
        try:
            for row in rows:
                if row and not row[0].lstrip().startswith(COMMENT_MARKS) and column < len(row) and row[column].strip():
                    found.append(row[column].strip()[:MAX_LINE])
        except csv.Error as exc:
            raise FeedError(f"not a CSV list (row {rows.line_num}: {exc})") from None
        return found
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith(COMMENT_MARKS):
            found.append(entry.split("#", 1)[0].split()[0][:MAX_LINE])
    return found


def indicators(feed: FeedSettings, raw: list[str], default_severity: int) -> tuple[list[store.Indicator], int]:
    """The entries as indicators of source ``feed:<id>``, and how many were no indicator."""
    good: list[store.Indicator] = []
    bad = 0
    severity = default_severity if feed.severity is None else feed.severity
    for entry in raw:
        try:
            kind = feed.type or classify(entry)
            good.append(store.Indicator(kind, normalize(kind, entry), f"feed:{feed.id}", severity))
        except BadIndicator:
            bad += 1
    return good, bad


def status(engine: Engine, feed: FeedSettings) -> dict[str, Any]:
    kept = kv.get(engine, STATUS_PREFIX + feed.id) or {}
    return {
        "id": feed.id,
        "url": shown_url(feed.url),
        "format": feed.format,
        "interval_s": feed.interval_s,
        "last_attempt_at": kept.get("last_attempt_at"),
        "last_success_at": kept.get("last_success_at"),
        "last_error": kept.get("last_error"),
        "indicators": kept.get("indicators", 0),
        "rejected": kept.get("rejected", 0),
        "created": kept.get("created", 0),
        "updated": kept.get("updated", 0),
        "changed": kept.get("changed", 0),
        "unchanged": kept.get("unchanged", 0),
        "removed": kept.get("removed", 0),
        "held_by_others": kept.get("held_by_others", 0),
    }


def _note(engine: Engine, feed: FeedSettings, changes: dict[str, Any]) -> None:
    key = STATUS_PREFIX + feed.id
    kv.put(engine, key, {**(kv.get(engine, key) or {}), **changes})


async def sync(engine: Engine, feed: FeedSettings, default_severity: int, max_total: int) -> dict[str, Any]:
    """Fetch the feed and make its entries its source's indicators; its status afterwards.
    Raises :class:`FeedError` (the status keeps the error; no indicator changed)."""
    started = time.time()
    try:
        body = await fetch(feed)
        good, bad = indicators(feed, entries(body, feed.format, feed.column), default_severity)
        done = await asyncio.to_thread(store.replace_source, engine, f"feed:{feed.id}", good, max_total)
        if done is None:
            raise StoreFull(f"its indicators would take the store past intel.max_indicators ({max_total:,})")
    except FeedError as exc:
        await asyncio.to_thread(_note, engine, feed, {"last_attempt_at": iso(started), "last_error": str(exc)})
        log.warning("intel.feed_failed", feed=feed.id, url=shown_url(feed.url), reason=str(exc))
        raise
    unique = len({i.digest for i in good})
    outcome = {
        "last_attempt_at": iso(started),
        "last_success_at": iso(time.time()),
        "last_error": None,
        "indicators": unique,
        "rejected": bad,
        "created": done.created,
        "updated": done.updated,
        "changed": done.changed,
        "unchanged": done.unchanged,
        "removed": done.removed,
        "held_by_others": done.held_by_others,
    }
    await asyncio.to_thread(_note, engine, feed, outcome)
    log.info(
        "intel.feed_synced",
        feed=feed.id,
        indicators=unique,
        rejected=bad,
        created=done.created,
        changed=done.changed,
        unchanged=done.unchanged,
        removed=done.removed,
        held_by_others=done.held_by_others,
    )
    return await asyncio.to_thread(status, engine, feed)
