"""The loaded hunt definitions and the problems of the files that did not load.

The folder is read at start and again whenever its listing changes: each schedule tick
compares the name, size and modification time of every ``*.yml``/``*.yaml`` file with what was
read last, and only then reads the files again. A bad file is reported (file, line, rule) in
:attr:`Catalog.errors` and in the log, and the other files load as usual; a missing folder is
an empty catalog. Two files giving one ``id``: the first in name order wins, the other is an error.
A link is followed only when it ends inside the folder (a mounted ConfigMap's links do); one that
leads out of it is reported and not read. Files past ``hunts.max_files`` are one error, not one each.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import structlog

from agentwatch.hunts.definition import DefinitionError, Hunt, read, shown
from agentwatch.hunts.settings import HuntSettings

log = structlog.get_logger("agentwatch.hunts")

SUFFIXES = (".yml", ".yaml")
# name, size, mtime, ctime, inode: ctime and inode see an edit a coarse mtime clock hides
Fingerprint = tuple[tuple[str, int, int, int, int], ...]


class Catalog:
    def __init__(self, folder: Path, settings: HuntSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.hunts: dict[str, Hunt] = {}
        self.errors: list[DefinitionError] = []
        self._seen: Fingerprint | None = None
        self._lock = threading.Lock()

    def _inside(self, entry: os.DirEntry[str]) -> bool:
        if not entry.is_symlink():
            return True
        try:
            target = Path(os.path.realpath(entry.path))
            return target.is_relative_to(os.path.realpath(self.folder))
        except (OSError, ValueError):
            return False

    def _listing(self) -> tuple[Fingerprint, list[DefinitionError]]:
        try:
            entries = sorted(
                (e for e in os.scandir(self.folder) if e.name.endswith(SUFFIXES) and e.is_file()),
                key=lambda e: e.name,
            )
        except (FileNotFoundError, NotADirectoryError):
            return (), []
        except OSError as exc:
            return (), [DefinitionError(shown(self.folder.name), None, f"folder: cannot be read ({exc.strerror})")]
        cap = self.settings.max_files
        over = []
        found = []
        if len(entries) > cap:
            extra = len(entries) - cap
            problem = f"file: {extra} files past hunts.max_files ({cap}), not read"
            over.append(DefinitionError(shown(entries[cap].name), None, problem))
            found.append(("", extra, 0, 0, 0))  # a changed count is a changed listing
        for e in entries[:cap]:
            if not self._inside(e):
                over.append(DefinitionError(shown(e.name), None, "file: a link to outside hunts.directory, not read"))
                found.append((e.name, -1, 0, 0, 0))
                continue
            try:
                st = e.stat()
            except OSError:
                continue  # removed while listed: the next tick sees the folder without it
            found.append((e.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        return tuple(found), over

    def refresh(self) -> bool:
        """Read the folder again if any file changed; whether it did."""
        with self._lock:
            listing, over = self._listing()
            if listing == self._seen:
                return False
            hunts: dict[str, Hunt] = {}
            errors: list[DefinitionError] = []
            for name, size, *_ in listing:
                if size < 0 or not name:
                    continue  # reported by the listing
                try:
                    got = read(self.folder / name, self.settings.max_file_bytes, self.settings.min_interval_s)
                except Exception:  # one file's surprise must not unload the others
                    log.exception("hunts.read_failed", file=shown(name))
                    got = [DefinitionError(shown(name), None, "file: could not be read (see the server log)")]
                if isinstance(got, list):
                    errors.extend(got)
                elif got.definition.id in hunts:
                    taken = f"id: {got.definition.id!r} is already defined in {hunts[got.definition.id].file}"
                    errors.append(DefinitionError(shown(name), None, taken))
                else:
                    hunts[got.definition.id] = got
            errors.extend(over)  # links out of the folder and the files past hunts.max_files
            for err in errors:
                log.warning("hunts.bad_definition", file=err.file, line=err.line, error=err.error)
            self.hunts, self.errors, self._seen = hunts, errors, listing
            log.info("hunts.loaded", hunts=len(hunts), errors=len(errors), folder=str(self.folder))
            return True

    def get(self, hunt_id: str) -> Hunt | None:
        return self.hunts.get(hunt_id)
