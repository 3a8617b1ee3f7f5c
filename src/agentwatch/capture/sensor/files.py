"""Watched paths through inotify (``inotify_simple``): credentials, SSH keys, ``.env``, agent configs.

inotify tells that a watched file was opened or written, not by whom: the events carry no
process unless exactly one agent process has the file's directory as its working
directory... which is a guess, so no process is attached and the confidence says so.
Directories are watched non-recursively plus their existing direct subdirectories.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from inotify_simple import INotify
from inotify_simple import flags as F

from agentwatch.capture.sensor.procs import base_event, text

MASK = F.OPEN | F.MODIFY | F.CLOSE_WRITE | F.CREATE | F.MOVED_TO | F.DELETE_SELF
MAX_WATCHES = 4096
SENSITIVE_NAMES = (".env", "id_rsa", "id_ed25519", "id_ecdsa", "credentials", ".netrc", ".npmrc", ".pypirc")
SENSITIVE_SUFFIXES = (".env",)  # prod.env, staging.env
SENSITIVE_DIRS = ("/.ssh/", "/.aws/")


def sensitive(path: Path) -> bool:
    """Whether ``path`` names keys, credentials or environment secrets."""
    name, spath = path.name, str(path)
    return (
        name.startswith(SENSITIVE_NAMES) or name.endswith(SENSITIVE_SUFFIXES) or any(d in spath for d in SENSITIVE_DIRS)
    )


class FileWatcher:
    def __init__(self, paths: list[str]) -> None:
        self.inotify = INotify()
        self.watches: dict[int, Path] = {}
        self.problems: list[str] = []
        self._written: dict[str, float] = {}
        for raw in paths:
            self.add(Path(os.path.expanduser(raw)))

    def add(self, path: Path) -> None:
        targets = [path]
        if path.is_dir():
            with contextlib.suppress(OSError):
                targets += [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()][:256]
        elif not path.exists():
            if path.parent.is_dir():  # watch the parent for the file's creation
                targets = [path.parent]
            else:
                self.problems.append(f"{path}: does not exist")
                return
        for t in targets:
            if len(self.watches) >= MAX_WATCHES:
                self.problems.append(f"{t}: more than {MAX_WATCHES} watches")
                return
            try:
                wd = self.inotify.add_watch(str(t), MASK)
            except OSError as exc:
                self.problems.append(f"{t}: {exc.strerror}")
                continue
            self.watches[wd] = t

    def fileno(self) -> int:
        return self.inotify.fileno()

    def read(self, timeout_ms: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        now = time.time()
        for ev in self.inotify.read(timeout=timeout_ms):
            base = self.watches.get(ev.wd)
            if base is None:
                continue
            path = base / ev.name if ev.name else base
            spath = str(path)
            if ev.mask & F.ISDIR:
                if ev.mask & F.CREATE:
                    self.add(path)
                continue
            if ev.mask & (F.MODIFY | F.CLOSE_WRITE | F.CREATE | F.MOVED_TO):
                # one file.write per burst of writes (MODIFY fires per write call)
                if ev.mask & F.MODIFY and now - self._written.get(spath, 0) < 1.0:
                    continue
                self._written[spath] = now
                if len(self._written) > 10_000:
                    self._written.clear()
                out.append(self._event("file.write", path, now, created=bool(ev.mask & F.CREATE)))
            elif ev.mask & F.OPEN:
                out.append(self._event("file.open", path, now))
        return out

    def _event(self, event_type: str, path: Path, now: float, created: bool = False) -> dict[str, Any]:
        body = base_event(event_type, now, None, "inotify")
        body["confidence"] = {
            "level": "medium",
            "completeness": "metadata_only",
            "reasons": ["inotify_watch"],
            "limitations": ["inotify_does_not_name_the_process"],
        }
        spath = text(str(path))[:4096]
        file_info: dict[str, Any] = {"path": spath, "name": text(path.name)[:256]}
        if path.suffix:
            file_info["extension"] = text(path.suffix.lstrip("."))[:32]
        try:
            st = path.stat()
            file_info["size"] = st.st_size
            file_info["mode"] = oct(st.st_mode & 0o7777)[2:].rjust(4, "0")
            file_info["uid"] = st.st_uid
        except OSError:
            pass
        data: dict[str, Any] = {"path": spath, "file": file_info}
        if event_type == "file.open":
            data["flags"] = []  # inotify does not report the open flags
        elif created:
            data["created"] = True
        body["data"] = data
        body["attrs"] = {"file.watched": True, "file.sensitive": sensitive(path)}
        return body

    def close(self) -> None:
        self.inotify.close()
