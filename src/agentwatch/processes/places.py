"""Places of the live streams, counted for the whole server: at most ``limit`` clients of a kind.

A cap such as ``live.max_clients`` counted in each process's memory would let
``serve --processes N`` hold N times as many clients. Under that command the parent names a
directory of its private one in ``AGENTWATCH_PLACES_DIR``, and a place there is a file lock:
taking one is an exclusive, non-blocking ``flock`` of one of the kind's ``limit`` files
(``<kind>.<n>``), on a descriptor of the place's own. The kernel lets the lock go when the
descriptor is closed, by :meth:`Place.release` or by the end of the process that held it, so
a process that died gives its places back with it. Taking a place tries the files in turn
(at most ``limit`` tries, each a few microseconds: clients connect far less often than they
send). A server of one process counts in memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on POSIX: each process counts its own places
    fcntl = None  # type: ignore[assignment]

PLACES_ENV = "AGENTWATCH_PLACES_DIR"


class Place:
    """One taken place; :meth:`release` gives it back (once, whatever calls it again)."""

    def __init__(self, places: Places, fd: int | None) -> None:
        self._places = places
        self._fd = fd
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self._places.taken -= 1
        if self._fd is not None:
            os.close(self._fd)  # which lets go of the lock


class Places:
    """The places of one kind (``kind`` names its files: letters, digits, ``_`` and ``-``)."""

    def __init__(self, kind: str, limit: int, directory: str | None = None) -> None:
        if not kind.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"kind: {kind!r} is not a file name")
        self.kind = kind
        self.limit = limit
        self.directory = Path(directory) if directory and fcntl is not None else None
        self.taken = 0  # by this process

    def take(self) -> Place | None:
        """A place, or None when all ``limit`` are taken (in the whole server)."""
        if self.taken >= self.limit:
            return None
        if self.directory is None:
            self.taken += 1
            return Place(self, None)
        for n in range(self.limit):
            fd = os.open(self.directory / f"{self.kind}.{n}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            self.taken += 1
            return Place(self, fd)
        return None


def places_of(aw: Any, kind: str, limit: int) -> Places:
    """The places of ``kind`` on this agentwatch (made on first use; shared by the server's
    processes when it runs several)."""
    every: dict[str, Places] = aw.__dict__.setdefault("live_places", {})
    found = every.get(kind)
    if found is None:
        found = every[kind] = Places(kind, limit, os.environ.get(PLACES_ENV))
    return found
