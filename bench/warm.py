"""Wait until a freshly started agentwatch has finished its start-up work.

The server answers at once, but compiles the bundled ATR rules in the background for
several seconds of CPU. Benchmarks measure the steady state, so they wait for
``/api/v1/health`` to report the rules ready before sending load.
"""

from __future__ import annotations

import time

import httpx


def wait_warm(url: str, timeout_s: float = 180.0) -> float:
    """Seconds waited until the detection engine reports its ATR set ready."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            doc = httpx.get(url + "/api/v1/health", timeout=5).json()
            if doc.get("components", {}).get("detection", {}).get("atr") in ("ready", "off"):
                return time.monotonic() - started
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url}: detection rules not ready after {timeout_s:.0f} s")
