"""Handing events to the spill file, and taking them back for replay.

The sender spills what it cannot deliver (counting what the file's bound or a failed write
loses), and replays the file once the collector answers. A replay first claims the file
(renames it ``<spill>.<pid>-<id>.replay``, so two processes never both send it), then posts it
a batch at a time. What the collector does not take stays claimed (the backlog) and goes
first next time; on close the backlog is given back under the spill file's name for a later
process. A line of a claim that is no JSON event is skipped, and counted in ``spill_malformed``
by the replay that gets past it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from agentwatch.sdk import spill

log = logging.getLogger("agentwatch.sdk")


class SpillHandoff:
    """One process's side of one spill file. ``count(name, n)`` adds to the transport's counters."""

    def __init__(self, path: Path, *, max_bytes: int, batch_size: int, count: Callable[[str, int], None]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self._count = count
        self._lock = threading.Lock()
        self._backlog: tuple[Path, int] | None = None  # a claimed spill file not yet replayed, and where
        self._orphans_seen = False  # claims left by an ended process wait (see look_for_orphans)
        self._full_reported = False  # the spill file's being full was warned about

    def look_for_orphans(self) -> None:
        """Note claims an ended process left, so that they are replayed even without a spill file."""
        self._orphans_seen = bool(spill.orphans(self.path))

    def waiting(self) -> bool:
        """Whether spilled events wait to be replayed."""
        return self._backlog is not None or self._orphans_seen or self.path.exists()

    # -- spilling --------------------------------------------------------------------
    def append(self, lines: list[bytes]) -> None:
        """Append to the spill file; what does not fit under ``max_bytes`` is dropped (the newest
        lines), counted, and warned about once until this process claims the file for replay."""
        if not lines:
            return
        try:
            with self._lock:
                kept = spill.append(self.path, lines, self.max_bytes)
                first_drop = kept < len(lines) and not self._full_reported
                self._full_reported |= first_drop
        except OSError as exc:  # nothing of these lines is in the file (see spill.append)
            self._count("dropped", len(lines))
            self._count("spill_failed", len(lines))
            log.warning(
                "agentwatch sdk: could not write the spill file %s (%s); %d events lost",
                self.path,
                exc.strerror or type(exc).__name__,
                len(lines),
            )
            return
        self._count("spilled", kept)
        refused = spill.untold_flock_refusal(self.path)  # logged here, outside the spill lock
        if refused is not None:
            log.warning(
                "agentwatch sdk: the filesystem of the spill file %s cannot lock it (%s); appends go on "
                "unlocked, so two processes sharing it could interleave a write that fails part-way",
                self.path,
                refused,
            )
        if kept < len(lines):
            self._count("dropped", len(lines) - kept)
            self._count("spill_full", len(lines) - kept)
        if first_drop:
            log.warning(
                "agentwatch sdk: the spill file %s is full (spill_max_bytes=%d); new events are dropped "
                "until the collector answers and it is replayed",
                self.path,
                self.max_bytes,
            )

    # -- replaying -------------------------------------------------------------------
    def replay(self, post: Callable[[list[bytes], str], bool]) -> bool:
        """Send one claimed spill file a batch at a time (it may be of any size) through ``post``;
        True when all of it was delivered. What the collector does not take stays claimed, and
        is sent before anything newer on the next attempt."""
        claim = self._backlog or self._claim()
        if claim is None:
            return False
        path, offset = claim
        self._backlog = claim  # until every line is delivered (an error keeps it too)
        skipped: list[int] = []  # malformed lines read since the last batch delivered
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                for start, chunk in spill.chunks(fh, self.batch_size, skipped.append):
                    if not post(chunk, "replayed"):
                        self._backlog = (path, start)
                        return False
                    self._backlog = (path, fh.tell())  # done up to here: a failure later resumes here
                    self._count_malformed(path, skipped)
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("agentwatch sdk: could not read the spill file %s", path)
            return False
        self._count_malformed(path, skipped)  # the ones after the last event
        self._backlog = None
        with contextlib.suppress(OSError):
            path.unlink()
        self._release(path)
        return True

    def _claim(self) -> tuple[Path, int] | None:
        """Take the oldest spilled events for this process (an atomic rename, so two processes never
        both send them): a claim left over by an ended process first, then the spill file."""
        self._orphans_seen = False
        for source in [*spill.orphans(self.path), self.path]:
            claimed = spill.claim_name(self.path)
            with spill.HELD_LOCK:
                spill.HELD.add(claimed.name)  # before it exists: no other transport takes it for an orphan
            try:
                with self._lock:
                    os.replace(source, claimed)
                    self._full_reported &= source != self.path  # room again: a new fill is news
            except OSError:
                self._release(claimed)
                continue
            spill.wait_for_appends(claimed)  # not under the spill lock: an append of this process may hold the file's
            self._orphans_seen = source != self.path
            return claimed, 0
        return None

    def _count_malformed(self, path: Path, skipped: list[int]) -> None:
        """Count and log the lines of the claim ``path`` that are no JSON event (the piece of a
        write cut short by an older version, or by a crash), once the replay has got past them.
        A replay that stops before leaves them to be read again, here or, after a hand-back, by
        whichever client replays next: counted when first read, they were counted again there."""
        for at in skipped:
            self._count("spill_malformed", 1)
            log.warning("agentwatch sdk: skipped a malformed line at byte %d of the spill file %s", at, path)
        skipped.clear()

    def _release(self, path: Path) -> None:
        with spill.HELD_LOCK:
            spill.HELD.discard(path.name)

    # -- giving back -----------------------------------------------------------------
    def give_back(self) -> None:
        """On close: an unfinished claim goes back to the spill file's name when that is free (a
        later process finds it there); otherwise it stays, released, and is replayed first."""
        if self._backlog is None:
            return
        path, offset = self._backlog
        self._backlog = None
        with contextlib.suppress(OSError):
            if offset:
                path = self._rest_of(path, offset)
            os.link(path, self.path)  # never replaces a spill file written meanwhile
            path.unlink()
        self._release(path)

    def _rest_of(self, path: Path, offset: int) -> Path:
        """A claim holding the lines of ``path`` from ``offset`` on (the ones not delivered), as
        they are: a malformed line among them is counted by the replay that gets past it."""
        rest = spill.claim_name(self.path)
        with spill.HELD_LOCK:
            spill.HELD.add(rest.name)
        try:
            with open(path, "rb") as fh, spill.open_private(rest) as out:
                fh.seek(offset)
                shutil.copyfileobj(fh, out)
        except BaseException:  # no half-written copy: ``path`` stays whole, and is replayed first
            with contextlib.suppress(OSError):
                rest.unlink()
            self._release(rest)
            raise
        path.unlink()
        self._release(path)
        return rest
