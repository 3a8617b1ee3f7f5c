"""Fixed time windows (rate limits, login throttles): keep a short test inside one of them.

The counters of ``soc/auth/limits.py`` count in windows aligned to the epoch, so a test that
expects its third attempt refused fails when the attempts straddle a window's end."""

from __future__ import annotations

import time


def wait_out_window_edge(window_s: int, margin: float = 5.0) -> None:
    """Sleep past the end of the current ``window_s`` window when fewer than ``margin`` seconds
    of it are left."""
    left = window_s - time.time() % window_s
    if left < margin:
        time.sleep(left + 0.05)
