"""Wait until a freshly started agentwatch has finished its start-up work.

The server answers at once, but compiles the bundled ATR rules in the background for
several seconds of CPU. Benchmarks measure the steady state, so they wait for
``/api/v1/health`` to report the rules ready before sending load.
"""

from __future__ import annotations

import time

import httpx


def wait_warm(url: str, timeout_s: float = 180.0, processes: int = 1) -> float:
    """Seconds waited until the detection engine reports its ATR set ready (in each of the
    server's ``processes``: every request is a new connection, which any of them may take)."""
    started = time.monotonic()
    ready: set[int] = set()
    while time.monotonic() - started < timeout_s:
        try:
            components = httpx.get(url + "/api/v1/health", timeout=5).json().get("components", {})
            if components.get("detection", {}).get("atr") in ("ready", "off"):
                ready.add(components.get("siblings", {}).get("pid", 0))
                if len(ready) >= processes:
                    return time.monotonic() - started
                continue
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url}: detection rules not ready after {timeout_s:.0f} s")
