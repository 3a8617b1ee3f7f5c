"""Keeping a node's running engine in step with the stored rule set (``detect_rules``).

Every node of a deployment shares one store, but each runs its own engine: a rule
uploaded, replaced, deleted, enabled or disabled through one node must change what the
others match. Two things are compared with what the engine holds:

- the enable flags: a flag that differs is applied in place (no reload: correlation and
  built-in sequence state are kept);
- the uploaded rule set: the ids of the uploaded rules and a revision written in the
  ``kv`` table by each replacement or deletion (:func:`bump_in`). A new id (an upload
  through either face) or a moved revision reloads the rule sets.

:class:`RuleSync` does the comparison; the API calls it before it answers, and the
lifecycle part :class:`RuleSyncComponent` calls it every :data:`SYNC_S` seconds so an
idle node's pipeline follows too. A comparison first reads one aggregate row (a fingerprint
of the stored rules); the rules themselves are read only when it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, case, func, select

from agentwatch.detect.engine import DetectionEngine
from agentwatch.detect.schema import detect_rules
from agentwatch.store.schema import kv
from agentwatch.store.upsert import upsert

log = structlog.get_logger("agentwatch.detect")

REVISION_KEY = "detect.rules.revision"
SYNC_S = 2.0  # how often the lifecycle part compares (a change made elsewhere lands within this)


def bump_in(conn: Connection) -> str:
    """Record, in the caller's transaction, that the uploaded rules changed other than by an upload."""
    revision = uuid.uuid4().hex
    upsert(
        conn,
        kv,
        [{"key": REVISION_KEY, "value": orjson.dumps(revision).decode()}],
        ["key"],
        {"value": lambda t, ex: ex.value},
    )
    return revision


def _read(conn: Connection) -> tuple[dict[str, bool], frozenset[str], str | None]:
    rows = conn.execute(select(detect_rules.c.rule_id, detect_rules.c.enabled, detect_rules.c.uploaded)).all()
    raw = conn.execute(select(kv.c.value).where(kv.c.key == REVISION_KEY)).scalar_one_or_none()
    flags = {r.rule_id: bool(r.enabled) for r in rows}
    uploaded = frozenset(r.rule_id for r in rows if r.uploaded)
    return flags, uploaded, None if raw is None else str(orjson.loads(raw))


def _fingerprint(conn: Connection) -> tuple[Any, ...]:
    """One aggregate row that moves with every insert, delete and flag change of the stored rules
    (each writes ``updated_at``), plus the revision replacements and deletions bump: while it
    stays put, the full comparison has nothing to find."""
    enabled = func.sum(case((detect_rules.c.enabled, 1), else_=0))
    row = conn.execute(select(func.count(), enabled, func.sum(detect_rules.c.updated_at))).one()
    raw = conn.execute(select(kv.c.value).where(kv.c.key == REVISION_KEY)).scalar_one_or_none()
    return int(row[0]), int(row[1] or 0), float(row[2] or 0.0), raw


def apply_flag(engine: DetectionEngine, rule_id: str, enabled: bool) -> None:
    """Enable or disable ``rule_id`` in the running engine only (the store already says so)."""
    loaded = engine.ensure_loaded()
    info = engine.infos.get(rule_id)
    if info is None:
        return
    if enabled:
        engine.disabled.discard(rule_id)
    else:
        engine.disabled.add(rule_id)
    info.enabled = enabled
    if loaded.sigma is not None and rule_id in loaded.sigma_rules:
        loaded.sigma.set_enabled(rule_id, enabled)


class RuleSync:
    """Brings one engine in line with the store; safe to call from several threads."""

    def __init__(self, engine: DetectionEngine) -> None:
        self.engine = engine
        self.revision: str | None = None
        self.seen: tuple[frozenset[str], str | None] | None = None  # the stored state last acted on
        self.started = False
        self.reloads = 0
        self.flags_applied = 0
        self.skipped = 0  # comparisons the fingerprint showed unneeded
        self._print: tuple[Any, ...] | None = None  # the store's fingerprint at the last full comparison
        self._checked: Any = None  # the engine's rule sets as that comparison left them
        self._lock = threading.Lock()

    def mark(self, revision: str) -> None:
        """This node wrote ``revision`` and reloaded itself: nothing to catch up on."""
        with self._lock:
            self.revision = revision

    def prime(self) -> None:
        """Record the stored revision before the engine first loads (at start), so the first
        comparison need not reload it; nothing when the engine has loaded already."""
        engine = self.engine
        if engine.db is None or not engine.settings.enabled:
            return
        with self._lock, engine._load_lock:  # the engine's first load waits for this one read
            if self.started or engine.ready:
                return
            with engine.db.connect() as conn:
                raw = conn.execute(select(kv.c.value).where(kv.c.key == REVISION_KEY)).scalar_one_or_none()
            self.revision = None if raw is None else str(orjson.loads(raw))
            self.started = True

    def sync(self) -> None:
        engine = self.engine
        if engine.db is None or not engine.settings.enabled:
            return
        with self._lock:
            with engine.db.connect() as conn:
                # one aggregate row per comparison; the rows themselves only when it moved
                # (or the engine reloaded since: a reload may race a flag set on the old sets)
                fingerprint = _fingerprint(conn)
                if self.started and fingerprint == self._print and engine.ensure_loaded() is self._checked:
                    self.skipped += 1
                    return
                flags, uploaded, revision = _read(conn)
            if not self.started:
                # The revision just read is the engine's only if the engine loads after this
                # read; one loaded earlier (at start, before another node replaced a rule) may
                # hold an older text of a rule whose id it still has: load it again.
                self.started = True
                self.revision = revision
                if engine.ready:
                    engine.reload()
                    self.reloads += 1
                engine.ensure_loaded()
                with engine.db.connect() as conn:
                    flags, uploaded, revision = _read(conn)
            engine.ensure_loaded()
            held = frozenset(rid for rid, info in engine.infos.items() if info.uploaded)
            # reload once per stored state that differs from what the engine holds (a text
            # that no longer loads must not reload the engine on every comparison)
            state = (uploaded, revision)
            if state != self.seen and (held != uploaded or revision != self.revision):
                engine.reload()
                self.revision = revision
                self.reloads += 1
                log.info("detect.rules_synced", rules=len(engine.infos), revision=revision)
            self.seen = state
            for rid, info in list(engine.infos.items()):
                wanted = flags.get(rid, True)
                if info.enabled != wanted:
                    apply_flag(engine, rid, wanted)
                    self.flags_applied += 1
            self._print, self._checked = fingerprint, engine.ensure_loaded()


def rule_sync_of(aw: Any) -> RuleSync:
    """The one :class:`RuleSync` of this agentwatch's engine."""
    from agentwatch.detect.component import engine_of

    found = aw.__dict__.get("rule_sync")
    if found is None:
        found = RuleSync(engine_of(aw))
        aw.rule_sync = found
    return found


class RuleSyncComponent:
    """Lifecycle part: compares every :data:`SYNC_S` seconds while the server runs."""

    def __init__(self, aw: Any) -> None:
        self.sync = rule_sync_of(aw)
        self._task: asyncio.Task[Any] | None = None
        self.failures = 0

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.sync.prime)
        except Exception:  # the first comparison reloads instead
            log.exception("detect.rule_sync_prime_failed")
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_S)
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.sync.sync)
            except Exception:  # a store hiccup: try again next time
                self.failures += 1
                log.exception("detect.rule_sync_failed")
            if time.monotonic() - started > SYNC_S:
                log.warning("detect.rule_sync_slow", seconds=round(time.monotonic() - started, 3))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def health(self) -> dict[str, Any]:
        return {"reloads": self.sync.reloads, "flags_applied": self.sync.flags_applied, "failures": self.failures}
