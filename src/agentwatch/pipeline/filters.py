"""Runtime process filters (the OISP ``/api/filters`` API), persisted in the store.

The store is the truth: every process that runs the pipeline (a standalone server, the
worker nodes of a scale-out) reads the filters again at most ``RELOAD_S`` seconds after
its last read, so a change made through any API node applies everywhere.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine

from agentwatch.events.model import Event
from agentwatch.store import kv

KEY = "runtime_filters"
MAX_ENTRIES = 1000
RELOAD_S = 5.0


class RuntimeFilters:
    def __init__(self, engine: Engine, reload_s: float = RELOAD_S) -> None:
        self.engine = engine
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self.process_names: list[str] = []
        self.pids: list[int] = []
        self._load()

    def _load(self) -> None:
        saved = kv.get(self.engine, KEY, {}) or {}
        self.process_names = list(saved.get("process_filter", []))
        self.pids = list(saved.get("pid_filter", []))
        self._read_at = time.monotonic()

    def refresh(self) -> None:
        """Read the stored filters again when the last read is older than ``reload_s``."""
        if time.monotonic() - self._read_at >= self.reload_s:
            with self._lock:
                self._load()

    @property
    def enabled(self) -> bool:
        return bool(self.process_names or self.pids)

    def admits(self, e: Event) -> bool:
        proc = e.process
        if not proc:
            return True  # events without a process (sessions, scans) are not process-filtered
        if proc.get("name") in self.process_names:
            return True
        return proc.get("pid") in self.pids

    def as_dict(self) -> dict[str, Any]:
        return {
            "process_filter": list(self.process_names),
            "pid_filter": list(self.pids),
            "filter_enabled": self.enabled,
        }

    def _save(self) -> None:
        kv.put(self.engine, KEY, {"process_filter": self.process_names, "pid_filter": self.pids})

    def add_process(self, name: str) -> None:
        with self._lock:
            self._load()  # another node may have changed them
            if name not in self.process_names:
                if len(self.process_names) >= MAX_ENTRIES:
                    raise ValueError(f"name: at most {MAX_ENTRIES} process filters")
                self.process_names.append(name)
                self._save()

    def add_pid(self, pid: int) -> None:
        with self._lock:
            self._load()
            if pid not in self.pids:
                if len(self.pids) >= MAX_ENTRIES:
                    raise ValueError(f"pid: at most {MAX_ENTRIES} pid filters")
                self.pids.append(pid)
                self._save()

    def clear(self) -> None:
        with self._lock:
            self.process_names.clear()
            self.pids.clear()
            self._save()
