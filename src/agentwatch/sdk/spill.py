"""The spill file: where events wait, as NDJSON, while the collector cannot be reached.

It is readable by its owner only (it holds thoughts and tool inputs). A transport replaying
it first claims it (renames it ``<spill>.<pid>-<id>.replay``); a claim whose process ended,
or that a closed transport of this process left, is an orphan the next replay takes over.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from agentwatch.sdk.encoding import is_json

BATCH_BYTES = 4 * 1024 * 1024  # the collector's default aop.max_batch_bytes: one post stays under it


def open_private(path: Path) -> IO[bytes]:
    """The spill file holds thoughts and tool inputs: readable by its owner only."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab")


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


def chunks(fh: IO[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(offset of the chunk, up to ``size`` JSON lines and BATCH_BYTES); a torn line is skipped."""
    while True:
        start, chunk, body = fh.tell(), [], 1
        while len(chunk) < size:
            at = fh.tell()
            line = fh.readline().strip()
            if not line and fh.tell() == at:
                break
            if not line or not is_json(line):
                continue
            if chunk and body + len(line) + 1 > BATCH_BYTES:
                fh.seek(at)  # the first line of the next chunk
                break
            chunk.append(line)
            body += len(line) + 1
        if not chunk:
            return
        yield start, chunk
