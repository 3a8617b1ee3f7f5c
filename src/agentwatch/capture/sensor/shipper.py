"""Sending sensor events to the server in batches, buffering on disk while it is away.

The buffer is a directory of NDJSON segment files, oldest first, capped in bytes: past the
cap the oldest segment is deleted and its events counted as dropped. Segments are sent
before live events so the server receives events in order.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog

log = structlog.get_logger("agentwatch.sensor")


class DiskBuffer:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.max_bytes = max_bytes
        self.dropped = 0

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("seg-*.ndjson"))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def put(self, events: list[dict[str, Any]]) -> None:
        data = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
        name = self.dir / f"seg-{time.time_ns():020d}.ndjson"
        tmp = name.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, name)
        segs = self.segments()
        total = sum(p.stat().st_size for p in segs)
        while total > self.max_bytes and len(segs) > 1:
            oldest = segs.pop(0)
            total -= oldest.stat().st_size
            self.dropped += oldest.read_bytes().count(b"\n")
            oldest.unlink(missing_ok=True)
            log.warning("sensor.buffer_full_dropped_oldest", segment=oldest.name)


class Shipper:
    def __init__(self, server: str, api_key: str | None, buffer: DiskBuffer, timeout: float = 10.0) -> None:
        headers = {"Content-Type": "application/x-ndjson"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
            headers["X-API-Key"] = api_key
        self.client = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout, trust_env=False)
        self.buffer = buffer
        self.sent = 0
        self.rejected = 0

    def _post(self, payload: bytes) -> bool:
        """True when the server took the batch (including per-event rejections, which are final)."""
        try:
            r = self.client.post("/api/v1/ingest", content=payload)
        except httpx.HTTPError as exc:
            log.info("sensor.server_unreachable", error=type(exc).__name__)
            return False
        if r.status_code == 200:
            try:
                doc = r.json()
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or not isinstance(doc.get("accepted"), int):
                # not agentwatch's ingest answer (a proxy's page, another service): kept to send again
                log.warning("sensor.unexpected_answer", status=r.status_code, body=r.text[:200])
                return False
            self.sent += int(doc.get("accepted", 0))
            self.rejected += int(doc.get("rejected", 0))
            for err in doc.get("errors", [])[:3]:
                log.warning("sensor.event_rejected", field=err.get("field"), reason=err.get("reason"))
            return True
        if r.status_code in (400, 413, 415):  # the batch itself is bad: never retried
            log.error("sensor.batch_refused", status=r.status_code, body=r.text[:300])
            self.rejected += payload.count(b"\n") + 1
            return True
        log.warning("sensor.server_error", status=r.status_code)
        return False

    def flush_buffer(self) -> bool:
        for seg in self.buffer.segments():
            if not self._post(seg.read_bytes()):
                return False
            seg.unlink(missing_ok=True)
        return True

    def ship(self, events: list[dict[str, Any]]) -> None:
        if not events:
            self.flush_buffer()
            return
        if self.flush_buffer() and self._post(b"\n".join(orjson.dumps(e) for e in events)):
            return
        self.buffer.put(events)

    def close(self) -> None:
        self.client.close()
