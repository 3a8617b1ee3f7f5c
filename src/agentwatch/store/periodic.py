"""A background thread that does one piece of store upkeep at a fixed interval."""

from __future__ import annotations

import threading


class Periodic:
    """Calls :meth:`tick` every ``interval_s`` on a daemon thread of its own, from
    :meth:`start` until :meth:`stop` (which waits for a tick under way)."""

    thread_name = "agentwatch-periodic"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """End the thread; whether it was running."""
        if self._thread is None:
            return False
        self._stop.set()
        self._thread.join(timeout=30)
        self._thread = None
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()
