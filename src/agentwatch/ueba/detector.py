"""The UEBA pipeline detector: learns a baseline per entity and scores each batch against it.

One pass per batch: for each stored event and each of its entities of a tracked type
(``ueba.entity_types``), the event is first checked against the entity's baseline, once that
baseline is past its warm-up (``ueba.warmup_events`` events over ``ueba.warmup_span_s`` of event
time), then learnt (``ueba.baseline``). An event scoring ``ueba.score_threshold`` or more on
its own reasons is flagged; an entity's flagged events of one batch are one anomaly: one
finding (alert type ``ueba``, rule ``AW-UEBA-<REASON>`` after the weightiest reason, dedup key
the entity), so repeats of one reason for one entity merge into one alert.
``ueba.anomalies.record`` stores the anomaly with that alert.

Memory and store: baselines live in an LRU of ``ueba.max_entities``; every change marks one
dirty, and :meth:`UebaDetector.persist` (every ``ueba.persist_interval_s`` and at shutdown,
see ``ueba.keeper``, and after a batch that left many evicted ones waiting) writes
the dirty ones in one transaction. At start the most recently active ones are loaded. An
entity missing from memory is looked for in the store, all of a batch's missing entities in one
query, but only when the store may hold more than memory (more were stored than loaded, one was
evicted, or other nodes write there too): no query per event.

Several nodes (NATS workers): each worker learns from the events it commits, and its persist
merges what it learnt since its last write into the stored row (``ueba.sync``, ``ueba.merge``),
in a transaction no concurrent writer's update is lost to; it then takes the merged baseline,
so it also scores against the other workers' learning (as of its last write). Each changed
baseline keeps ``base``, what it held when last read or written (a copy taken at its first
change), and the merge adds the difference: no SQL and no merge per event. API nodes learn
nothing: their routes read the store, which lags memory by up to ``ueba.persist_interval_s``.
A reset deletes the baseline from the answering node's memory and from the store; a worker
still holding it finds it gone (or begun again, another generation) at its next write and
forgets it, what it learnt meanwhile included (until then it may still score against it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import Engine

from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.ueba import store, sync
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.features import sources, templates
from agentwatch.ueba.finding import finding_of
from agentwatch.ueba.merge import merged
from agentwatch.ueba.scoring import Verdict, burst_of, check, score_of, weights
from agentwatch.ueba.settings import UebaSettings

log = structlog.get_logger("agentwatch.ueba")
MAX_VALUE = 512  # the store's value column
# An event stamped further ahead of its receipt than this is taken at its receive time: one
# clock gone wrong (a year 9000) would otherwise end the warm-up at once and, as the volume
# never goes back to an older bucket, stop the entity's volume learning for good.
AHEAD_S = 300.0
EVICTED_WRITE = 1000  # evicted baselines waiting (or max_entities, when fewer) that are written at once


class UebaDetector:
    name = "ueba"

    def __init__(self, engine: Engine, settings: UebaSettings, shared_store: bool = False) -> None:
        self.engine = engine
        self.settings = settings
        self.shared_store = shared_store
        self._mem: OrderedDict[str, Baseline] = OrderedDict()
        self._dirty: set[str] = set()
        self._evicted: dict[str, Baseline] = {}  # evicted while dirty: written at the next persist
        # being written by a persist: an entity met again meanwhile is taken from here, not from
        # the store, which does not hold this state yet
        self._writing: dict[str, Baseline] = {}
        self._lock = threading.RLock()
        self._persisting = threading.Lock()  # one persist or reset at a time
        self._store_may_hold_more = shared_store
        self.loaded = False
        self.evictions = 0
        self.persisted_at: float | None = None

    # -- memory and store --------------------------------------------------------------
    def load(self) -> None:
        """Read the most recently active baselines back from the store (once)."""
        with self._lock:
            if self.loaded:
                return
            found, total = store.load(self.engine, self.settings.max_entities, self.settings.top_k)
            for b in found:
                self._mem.setdefault(b.entity_id, b)
            self._store_may_hold_more = self.shared_store or total > len(found)
            self.loaded = True
        log.info("ueba.baselines_loaded", baselines=len(found), stored=total)

    def _put(self, b: Baseline) -> None:
        self._mem[b.entity_id] = b

    def _trim(self) -> None:
        """Evict the least recently active baselines beyond ``max_entities``. Run after a whole
        batch: evicting during one could drop a baseline read from the store for an entity the
        batch meets later, which would then start afresh and be written over the stored one."""
        while len(self._mem) > self.settings.max_entities:
            eid, old = self._mem.popitem(last=False)
            self.evictions += 1
            self._store_may_hold_more = True
            if eid in self._dirty:
                self._dirty.discard(eid)
                self._evicted[eid] = old

    def _fetch_missing(self, batch: Sequence[Event], tracked: frozenset[str]) -> None:
        if not (self._store_may_hold_more or self._evicted or self._writing):
            return  # nothing held anywhere else: a missing entity is a new one
        missing = {
            ent["id"] for e in batch for ent in e.entities if ent.get("type") in tracked and ent["id"] not in self._mem
        }
        if not missing:
            return
        for eid in [m for m in missing if m in self._evicted]:
            self._put(self._evicted.pop(eid))
            self._dirty.add(eid)
            missing.discard(eid)
        for eid in [m for m in missing if m in self._writing]:
            self._put(self._writing[eid])
            missing.discard(eid)
        if missing and self._store_may_hold_more:
            for b in store.fetch(self.engine, missing, self.settings.top_k):
                self._put(b)

    def persist(self) -> int:
        """Write the baselines changed since the last persist; how many were written."""
        with self._persisting:
            return self._persist()

    def persist_for_read(self) -> None:
        """What a read of the store asks first: write the changed baselines (nothing when none
        changed), and when that write fails, let the read answer what the store holds rather
        than fail (the baselines stay changed, for the next write)."""
        try:
            self.persist()
        except Exception:
            log.warning("ueba.read_persist_failed", exc_info=True)

    def _write_evicted(self) -> None:
        """After a batch: once :data:`EVICTED_WRITE` (at most ``max_entities``) evicted baselines
        wait, write them, so memory stays bounded between two persists and one write stays short.
        A batch detected on the event loop (a small SQLite one) hands the write to a thread: the
        loop never waits for another writer's lock."""
        if len(self._evicted) < min(EVICTED_WRITE, self.settings.max_entities):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_now()
        else:
            loop.run_in_executor(None, self._write_now)

    def _write_now(self) -> None:
        if not self._persisting.acquire(blocking=False):
            return  # another persist runs: it is writing them
        try:
            self._persist()
        except Exception:  # the events are committed; the baselines are written next time
            log.exception("ueba.persist_failed")
        finally:
            self._persisting.release()

    def _persist(self) -> int:
        with self._lock:
            changed = [self._mem[eid] for eid in self._dirty if eid in self._mem] + list(self._evicted.values())
            # what is written is each one as now; what it learns meanwhile is told from this copy
            jobs = [sync.Job(b.copy(), b.base) for b in changed]
            for b, job in zip(changed, jobs, strict=True):
                b.base = job.now
            self._dirty.clear()
            self._evicted.clear()
            self._writing = {b.entity_id: b for b in changed}
        try:
            sync.write(self.engine, jobs, self.settings.top_k, self.settings.ema_alpha)
        except Exception:
            with self._lock:  # written next time; no reset ran meanwhile (it waits for this write)
                for b, job in zip(changed, jobs, strict=True):
                    b.base = job.base
                    if b.entity_id in self._mem:
                        self._dirty.add(b.entity_id)
                    else:
                        self._evicted.setdefault(b.entity_id, b)
                self._writing = {}
            raise
        with self._lock:
            self._writing = {}
            for b, job in zip(changed, jobs, strict=True):
                self._adopt(b, job)
        self.persisted_at = time.time()
        return sum(1 for j in jobs if j.result is not None)

    def _adopt(self, b: Baseline, job: sync.Job) -> None:
        """After the write: take what the store holds now (the other nodes' learning too), plus
        what ``b`` learnt during the write; or forget ``b``, reset elsewhere meanwhile."""
        eid, written = b.entity_id, job.result
        if written is None:
            if self._mem.get(eid) is b:
                del self._mem[eid]
                self._dirty.discard(eid)
            if self._evicted.get(eid) is b:
                del self._evicted[eid]
            return
        changed = eid in self._dirty or self._evicted.get(eid) is b
        if job.as_is:
            b.generation, b.version = written.generation, written.version
            job.now.generation, job.now.version = written.generation, written.version
            base = job.now
        else:
            if changed:
                b.assign(merged(written, b, job.now, self.settings.top_k, self.settings.ema_alpha))
            else:
                b.assign(written)
            base = written
        b.base = base if changed else None
        b.stored = True

    def get(self, entity_id: str) -> Baseline | None:
        """The entity's baseline: from memory, else as last stored. A copy, safe to read."""
        with self._lock:
            b = self._mem.get(entity_id) or self._evicted.get(entity_id) or self._writing.get(entity_id)
            if b is not None:
                return Baseline.from_state(
                    {
                        "entity_id": b.entity_id,
                        "type": b.type,
                        "value": b.value,
                        "first_seen": b.first_seen,
                        "last_seen": b.last_seen,
                        "event_count": b.event_count,
                    },
                    b.to_state(),
                    self.settings.top_k,
                )
        found = store.fetch(self.engine, [entity_id], self.settings.top_k)
        return found[0] if found else None

    def reset(self, entity_id: str) -> bool:
        """Forget the entity's baseline here and in the store; False when neither held one."""
        with self._persisting, self._lock:
            held = self._mem.pop(entity_id, None) is not None
            held = self._evicted.pop(entity_id, None) is not None or held
            self._dirty.discard(entity_id)
            return store.remove(self.engine, entity_id) or held

    def forget_idle(self, delete_page: Callable[[frozenset[str]], list[str]]) -> list[str]:
        """Run ``delete_page(spared)``, which deletes stored idle baselines but those ``spared``
        (changed here, not yet written), and forget here the ones it deleted; their ids."""
        with self._persisting, self._lock:
            gone = delete_page(frozenset(self._dirty | self._evicted.keys()))
            for eid in gone:
                self._mem.pop(eid, None)
            return gone

    def counts(self) -> dict[str, int]:
        s = self.settings
        with self._lock:
            warmed = sum(1 for b in self._mem.values() if b.warmed(s.warmup_events, s.warmup_span_s))
            waiting = len(self._dirty) + len(self._evicted)  # changed, not yet written
            return {"in_memory": len(self._mem), "warmed": warmed, "dirty": waiting, "evicted": self.evictions}

    # -- the detector ------------------------------------------------------------------
    def detect(self, batch: Sequence[Event]) -> list[Finding]:
        s = self.settings
        if not s.enabled:
            return []
        if not self.loaded:
            self.load()
        tracked = frozenset(s.entity_types)
        verdicts: dict[str, Verdict] = {}
        # locals: this loop runs for every event and tracked entity
        mem, dirty, cap = self._mem, self._dirty, s.top_k
        need, span, width, alpha = s.warmup_events, s.warmup_span_s, s.volume_bucket_s, s.ema_alpha
        weight, threshold, keep = weights(s), s.score_threshold, s.max_anomaly_events
        with self._lock:
            self._fetch_missing(batch, tracked)
            for e in batch:
                ents = [ent for ent in e.entities if ent.get("type") in tracked]
                if not ents:
                    continue
                ts = e.ts
                if ts > e.received_at + AHEAD_S:
                    ts = e.received_at
                hour = int(ts // 3600) % 24
                srcs, tpls = sources(e), templates(e)
                for ent in ents:
                    eid = ent["id"]
                    b = mem.get(eid)
                    if b is None:
                        b = Baseline(eid, ent["type"], str(ent.get("value", ""))[:MAX_VALUE])
                        self._put(b)
                    else:
                        mem.move_to_end(eid)
                        if b.base is None and b.stored:  # its first change since read or written
                            b.base = b.copy()
                    dirty.add(eid)
                    if not (b.active or b.warmed(need, span)):
                        b.learn(ts, hour, srcs, tpls, cap)
                        b.add_volume(ts, width, alpha)
                        continue
                    found = check(b, hour, srcs, tpls, s)
                    b.learn(ts, hour, srcs, tpls, cap)
                    burst = b.add_volume(ts, width, alpha) and burst_of(b, s)
                    if burst:
                        found.append(("burst", burst))
                    if found and (score := score_of(found, weight)) >= threshold:
                        v = verdicts.get(eid) or verdicts.setdefault(eid, Verdict(b))
                        v.add(e, ts, found, score, keep)
            self._trim()
        self._write_evicted()
        return [f for v in verdicts.values() if (f := finding_of(v, self.settings, self.name)) is not None]


def detector_of(aw: Any) -> UebaDetector:
    """The one UEBA detector of this agentwatch (the pipeline, the keeper and the routes share it)."""
    found = aw.__dict__.get("ueba_detector")
    if found is None:
        shared = aw.settings.nats_url is not None
        found = aw.ueba_detector = UebaDetector(aw.engine, aw.settings.ueba, shared_store=shared)
    return found
