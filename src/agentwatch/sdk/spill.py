"""The spill file: where events wait, as NDJSON, while the collector cannot be reached.

It is readable by its owner only (it holds thoughts and tool inputs), and it grows only up to
a bound, which counts its claims too: lines that do not fit are not written (the caller counts
them), and what is there already is never cut. An append is all or nothing: a write cut short
(a full disk, a file size limit) is taken back, so no piece of a line is left for the next one
to join. A transport replaying it first claims it (renames it
``<spill>.<pid>-<id>.replay``); a claim whose process ended, or that a closed transport of
this process left, is an orphan the next replay takes over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from agentwatch.sdk.encoding import is_json

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("agentwatch.sdk")

BATCH_BYTES = 4 * 1024 * 1024  # the collector's default aop.max_batch_bytes: one post stays under it


def open_private(path: Path) -> IO[bytes]:
    """The spill file holds thoughts and tool inputs: readable by its owner only."""
    return os.fdopen(_open_fd(path, os.O_WRONLY), "ab")


def _open_fd(path: Path, mode: int) -> int:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, mode | os.O_APPEND | os.O_CREAT, 0o600)


def append(path: Path, lines: list[bytes], max_bytes: int) -> int:
    """Append the oldest of ``lines`` that fit, whole, in one write; how many were written.
    ``max_bytes`` bounds what waits on disk: the spill file and its claims together (a claim is
    the spill file of before, not yet replayed). Nothing that fits: the file is not even created."""
    room = max_bytes - size(path) - claimed_bytes(path)
    fit = 0
    for line in lines:
        if len(line) + 1 > room:
            break
        room -= len(line) + 1
        fit += 1
    if fit:
        write_whole(path, b"".join(line + b"\n" for line in lines[:fit]))
    return fit


REOPENS = 100  # a file claimed this many times under one append: append to the last one anyway


def write_whole(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines) or nothing: when a write fails part-way, the file is cut
    back to where it ended before, and the error raised. An exclusive lock keeps another
    process's append from landing between the write and that cut. A file that does not end
    with a line break (a crash mid-write) gets one first: its torn piece stays a line of its own.

    A replay may claim (rename) the file between the open and the lock: the claim is read once
    the lock is free (``wait_for_appends``) and then deleted, so an append into it would be
    lost. Holding the lock, the append checks the file is still ``path``, and opens it again
    if not."""
    for attempt in range(REOPENS):
        fd = _open_fd(path, os.O_RDWR)
        try:
            with _locked(fd, path):
                if attempt < REOPENS - 1 and not _still_at(fd, path):
                    continue
                before = os.fstat(fd).st_size
                if before and _last_byte(fd, before) != b"\n":
                    data = b"\n" + data
                try:
                    view = memoryview(data)
                    while view:  # a short write (the disk filling up) is followed by an error, or the rest
                        view = view[os.write(fd, view) :]
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, before)
                    raise
                return
        finally:
            os.close(fd)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the one named ``path`` (not claimed meanwhile)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:  # cannot tell: append to the file held, as before this check
        return True
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def wait_for_appends(claim: Path) -> None:
    """Wait until no append into ``claim`` is under way (one that opened the spill file before
    it was claimed and holds its lock); later appends see the rename and go to a new file."""
    if fcntl is None:
        return
    try:
        fd = os.open(claim, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # a filesystem without flock: nothing to wait for
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _last_byte(fd: int, size: int) -> bytes:
    os.lseek(fd, size - 1, os.SEEK_SET)  # reads only: O_APPEND writes at the end wherever this is
    return os.read(fd, 1)


# Spill files whose filesystem refused flock, and the refusals not logged yet (a dict's pop is
# atomic: no lock that a fork could leave held).
_FLOCK_REFUSED: set[Path] = set()
_UNTOLD: dict[Path, str] = {}


@contextlib.contextmanager
def _locked(fd: int, path: Path) -> Iterator[None]:
    if fcntl is None:  # Windows: no fork there; the transport's lock serializes this process
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        # Some filesystems refuse flock (NFS without a lock daemon: ENOLCK; some FUSE and SMB
        # mounts: EOPNOTSUPP). The lock only keeps another process's append apart from this
        # one's; the append itself, unlocked as in earlier versions, still keeps the events.
        # Nothing is logged here: the caller holds its spill lock, which a logging handler
        # that reports to agentwatch could need (see ``untold_flock_refusal``).
        if path not in _FLOCK_REFUSED:
            _FLOCK_REFUSED.add(path)
            _UNTOLD[path] = exc.strerror or type(exc).__name__
        yield
        return
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def untold_flock_refusal(path: Path) -> str | None:
    """Why the filesystem of ``path`` refused flock, the first time this is asked; else None."""
    return _UNTOLD.pop(path, None)


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def claimed_bytes(spill: Path) -> int:
    """The bytes of every claim of ``spill``, whichever process holds it."""
    prefix, total = f"{spill.name}.", 0
    with contextlib.suppress(OSError), os.scandir(spill.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".replay"):
                with contextlib.suppress(OSError):
                    total += entry.stat().st_size
    return total


POINTED_OUT: set[Path] = set()  # shared spill files already named in the log


def point_out_shared_file(shared: Path) -> None:
    """Earlier versions spilled the events of every collector into one file. Its events do not
    say which collector they were for, so no client replays it; the log says so, once a file."""
    if shared in POINTED_OUT or not shared.exists():
        return
    POINTED_OUT.add(shared)
    log.warning(
        "agentwatch sdk: %s holds events an earlier version spilled for a collector it did not note; "
        "they are not replayed. To deliver them, give this file as spill_path to a client of that collector",
        shared,
    )


def pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe probe: only this process's own leftovers are taken over
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


HELD: set[str] = set()  # the claims this process's transports are replaying
HELD_LOCK = threading.Lock()


def _forget_claims_in_child() -> None:
    """A forked child holds none of its parent's claims (their names carry the parent's pid, so
    they are the parent's until it ends), nor the lock a thread of the parent may have held."""
    global HELD, HELD_LOCK
    HELD = set()
    HELD_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_claims_in_child)


def claim_name(spill: Path) -> Path:
    return spill.with_name(f"{spill.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.replay")


def orphans(spill: Path) -> list[Path]:
    """Claims left by a process that ended mid-replay (or a transport of this one that closed):
    older than the spill file, so they are replayed first."""
    prefix, found = f"{spill.name}.", []
    with contextlib.suppress(OSError):
        for name in os.listdir(spill.parent):
            if not (name.startswith(prefix) and name.endswith(".replay")):
                continue
            pid = name[len(prefix) :].split("-", 1)[0]
            if not pid.isdigit():
                continue
            with HELD_LOCK:
                held = name in HELD
            mine = int(pid) == os.getpid()
            if (mine and not held) or (not mine and not pid_alive(int(pid))):
                found.append(spill.parent / name)
    return sorted(found, key=mtime)


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def chunks(
    fh: IO[bytes], size: int, malformed: Callable[[int], None] | None = None
) -> Iterator[tuple[int, list[bytes]]]:
    """(offset of the chunk, up to ``size`` JSON lines and BATCH_BYTES). A line that is no JSON
    (a torn one) is skipped, and its offset given to ``malformed``; the rest is still read."""
    while True:
        start, chunk, body = fh.tell(), [], 1
        while len(chunk) < size:
            at = fh.tell()
            line = fh.readline().strip()
            if not line and fh.tell() == at:
                break
            if not line:
                continue
            if not is_json(line):
                if malformed is not None:
                    malformed(at)
                continue
            if chunk and body + len(line) + 1 > BATCH_BYTES:
                fh.seek(at)  # the first line of the next chunk
                break
            chunk.append(line)
            body += len(line) + 1
        if not chunk:
            return
        yield start, chunk
