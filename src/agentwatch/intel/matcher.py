"""The pipeline detector matching every stored event against the indicators.

What is looked up in an event: the addresses and domain names it names (its ip and domain
entities: destinations, sources, DNS queries, provider endpoints), URLs and their hosts in
``data.url`` and in tool-call arguments, and the hashes of processes and files
(``process.hash``, ``data.file.hash``, ``data.hash``, ``data.content_hash``). A hit is an alert
of type ``ioc`` (rule ``AW-INTEL-IOC``) with the indicator's severity and tags; repeats of one
indicator on one host merge into one alert.

The index lives in memory. A change this process commits (the API, a feed's sync, a playbook)
is applied to it at once, indicator by indicator, when the index was at the change log's head
the change found. The changes of other nodes sharing the store (and any of this node's it did
not apply so) are read from the change log (``intel.changes``) at most every ``intel.sync_s``,
when the index is next used, and applied one indicator at a time. The index is rebuilt whole
only at start, when the log was pruned past the node's position (it missed entries it can no
longer read), and, as a safety net, once every ``intel.refresh_s``. Expired indicators are
skipped when matched and dropped from the index at their ``expires_at``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agentwatch.events.model import Event
from agentwatch.intel import changes, store
from agentwatch.intel.index import IocIndex
from agentwatch.intel.indicators import BadIndicator, normalize
from agentwatch.intel.settings import IntelSettings
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.snapshot import snapshot

log = structlog.get_logger("agentwatch.intel")

RULE_ID = "AW-INTEL-IOC"
ARGS_CHARS = 64 * 1024  # tool-call arguments searched for URLs, at most
MAX_URLS = 32
SYNC_PAGE = 5_000  # change log entries read at once
# A URL ends at a blank, a quote, <, >, ` or a backslash, at CJK or fullwidth punctuation (。，「」: prose
# in those scripts puts no blank around a URL), and at "](" (a Markdown link's text ends there
# and its target begins: ``[https://shown.example](https://target.example)`` is two URLs). It
# may begin right after a letter: no word boundary, as Chinese or Japanese text has none.
URL_RE = re.compile(
    r"(?:https?|ftp)://(?:(?!\]\()[^\s\"'<>`\\\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]){1,2048}",
    re.IGNORECASE,
)
TRAILING = ".,;:!?*)]}"  # punctuation after a URL in prose, not part of it (unless a bracket it closes)
OPENER = {")": "(", "]": "[", "}": "{"}
HASH_KINDS = ("sha256", "sha1", "md5")
LENGTH_KIND = {64: "sha256", 40: "sha1", 32: "md5"}


def _hashes(holder: Any) -> Iterator[tuple[str, str]]:
    if isinstance(holder, dict):
        for kind in HASH_KINDS:
            value = holder.get(kind)
            if isinstance(value, str):
                yield kind, value


def _trimmed(url: str) -> str:
    """``url`` without the punctuation prose puts after it: ``(see https://x.example/a).`` holds
    ``https://x.example/a``; a closing bracket the URL opened stays (``.../Foo_(bar)``)."""
    opened = {c: url.count(c) for c in OPENER.values()}
    closed = {c: url.count(c) for c in OPENER}
    end = len(url)
    while end and url[end - 1] in TRAILING:
        closer = url[end - 1]
        if closer in OPENER:
            if opened[OPENER[closer]] >= closed[closer]:
                break
            closed[closer] -= 1
        end -= 1
    return url[:end]


def candidates(event: Event) -> Iterator[tuple[str, str, str]]:
    """(field, kind, value) of everything in ``event`` worth looking up, values not yet canonical."""
    for ent in event.entities:
        if ent.get("type") in ("ip", "domain"):
            yield f"entities.{ent['type']}", ent["type"], ent["value"]
    for kind, value in _hashes(event.process.get("hash")):
        yield "process.hash", kind, value
    data = event.data
    file_info = data.get("file")
    if isinstance(file_info, dict):
        for kind, value in _hashes(file_info.get("hash")):
            yield "data.file.hash", kind, value
    for kind, value in _hashes(data.get("hash")):
        yield "data.hash", kind, value
    content_hash = data.get("content_hash")
    if isinstance(content_hash, str) and len(content_hash) in LENGTH_KIND:
        yield "data.content_hash", LENGTH_KIND[len(content_hash)], content_hash
    url = data.get("url")
    if isinstance(url, str):
        yield "data.url", "url", url
    if event.event_type == "agent.tool_call":
        args = data.get("arguments")
        text = args if isinstance(args, str) else orjson.dumps(args).decode() if args is not None else ""
        for match in list(URL_RE.finditer(text[:ARGS_CHARS]))[:MAX_URLS]:
            yield "data.arguments", "url", _trimmed(match.group(0))


class IocMatcher:
    name = "intel"

    def __init__(self, engine: Engine, settings: IntelSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._index = IocIndex()
        self.position = 0  # the change log's number up to which the index holds every change
        self._synced_at = float("-inf")  # time.monotonic() of the last read of the log
        self._rebuilt_at = float("-inf")
        self._lock = threading.Lock()  # one writer of the index at a time
        self.loaded = False
        self.rebuilds = 0  # whole rebuilds of the index (each reads every live indicator)
        self.applied = 0  # change log entries applied one by one
        store.watch(self)

    # -- the index ---------------------------------------------------------------------
    def rebuild(self) -> None:
        """Rebuild the index from the store now."""
        with self._lock:
            self._rebuild()

    def _rebuild(self) -> None:
        with snapshot(self.engine) as conn:  # the indicators as of the log's head read with them
            position = changes.head(conn)
            indicators = store.active_in(conn, time.time())
        self._index = IocIndex.of(indicators)
        self.position = position
        self._synced_at = self._rebuilt_at = time.monotonic()
        self.loaded = True
        self.rebuilds += 1
        log.info("intel.index_loaded", indicators=len(indicators), position=position)

    def sync(self) -> None:
        """Apply the change log's entries after this node's position, one indicator at a time
        (built first if it never was); rebuild when the log was pruned past the position."""
        with self._lock:
            if not self.loaded:
                self._rebuild()
                return
            self._synced_at = time.monotonic()
            while True:
                batch = changes.read(self.engine, self.position, SYNC_PAGE)
                if batch.pruned_to > self.position:
                    log.info("intel.index_behind_pruned_log", position=self.position, pruned_to=batch.pruned_to)
                    self._rebuild()
                    return
                now = time.time()
                for seq, ioc_id, _op in batch.entries:
                    # the indicator as stored now (an upsert whose row is gone was deleted since)
                    row = batch.rows.get(ioc_id)
                    ind = None if row is None else store.from_row(row)
                    if ind is None or (ind.expires_at is not None and ind.expires_at <= now):
                        self._index.drop_id(ioc_id)
                    else:
                        self._index.put(ind)
                    self.position = seq
                    self.applied += 1
                if len(batch.entries) < SYNC_PAGE:
                    return

    def reload(self) -> None:
        """Bring the index up to the stored indicators now (this process's changes are applied as
        they commit; this reads what the log holds beyond them)."""
        self.sync()

    def changed(self, change: store.Change) -> None:
        """A change this process committed (``store.watch``): applied to the index when it was at
        the log's head the change found; otherwise left to the next read of the log."""
        if change.engine is not self.engine:
            return
        with self._lock:
            if not self.loaded or self.position != change.before:
                return
            now = time.time()
            for ind_id in change.removed:
                self._index.drop_id(ind_id)
            for ind in change.written:
                if ind.expires_at is not None and ind.expires_at <= now:
                    self._index.drop_id(ind.id)
                else:
                    self._index.put(ind)
            self.position = change.after

    def index(self) -> IocIndex:
        """The index, first brought up to the change log when ``intel.sync_s`` passed since it
        was last read (rebuilt whole when never built, and every ``intel.refresh_s``), without
        the indicators expired by now."""
        moment = time.monotonic()
        if not self.loaded or moment - self._rebuilt_at >= self.settings.refresh_s:
            with self._lock:
                if not self.loaded or time.monotonic() - self._rebuilt_at >= self.settings.refresh_s:
                    self._rebuild()  # unless another thread just did
        elif moment - self._synced_at >= self.settings.sync_s:
            try:
                self.sync()
            except SQLAlchemyError:  # the store is unreachable: match with what is held, read again later
                log.warning("intel.sync_failed", exc_info=True)
        now = time.time()
        if self._index.next_expiry() <= now:
            with self._lock:
                self._index.expire(now)
        return self._index

    def lookup(self, kind: str, value: str, now: float | None = None) -> list[store.Indicator]:
        """The live indicators ``value`` (of ``kind``, any spelling) meets."""
        try:
            canonical = normalize(kind, value)
        except BadIndicator:
            return []
        moment = time.time() if now is None else now
        hits = self.index().value(kind, canonical)
        if kind == "url":  # a URL also meets its host's indicators
            host = urlsplit(canonical).hostname or ""
            hits = hits + self.index().address(host) + self.index().domain(host)
        return [h for h in hits if h.expires_at is None or h.expires_at > moment]

    # -- the detector ------------------------------------------------------------------
    def detect(self, batch: Sequence[Event]) -> list[Finding]:
        if not self.settings.enabled or not len(self.index()):
            return []
        findings: list[Finding] = []
        for event in batch:
            seen: set[str] = set()
            for where, kind, value in candidates(event):
                for ind in self.lookup(kind, value, event.received_at):
                    if ind.id in seen:
                        continue
                    seen.add(ind.id)
                    findings.append(self._finding(event, ind, where, value))
        return findings

    def _finding(self, event: Event, ind: store.Indicator, where: str, value: str) -> Finding:
        host = event.body.get("host")
        hostname = host.get("hostname") if isinstance(host, dict) else None
        return Finding(
            detector=self.name,
            rule_id=RULE_ID,
            title=f"Known-bad {ind.kind} seen: {ind.value}",
            severity=ind.severity,
            events=[event],
            alert_type="ioc",
            message=f"{where} holds {value[:256]!r}, which meets the {ind.kind} indicator {ind.value[:256]!r}"
            f" from {ind.source}" + (f": {ind.description[:500]}" if ind.description else ""),
            tags=list(ind.tags),
            dedup_key=f"{ind.id}|{hostname or ''}",
            session_id=event.session_id,
            details={"indicator": ind.as_json(), "field": where, "matched": value[:2048]},
        )


def matcher_of(aw: Any) -> IocMatcher:
    """The one matcher of this agentwatch (the pipeline's detector and the routes share it)."""
    found = aw.__dict__.get("intel_matcher")
    if found is None:
        found = aw.intel_matcher = IocMatcher(aw.engine, aw.settings.intel)
    return found
