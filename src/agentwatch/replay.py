"""``agentwatch replay``: feed a JSONL file of events through the ingest API.

Lines go out in batches (or at the pace of their event times), each batch one request; what
the server answers is tallied per line. A request the server refuses for now (429, 503) is
sent again after its ``Retry-After``; one too large (413) is sent again in halves. The first
Ctrl-C lets the request in flight finish and stops there, so every line is either answered or
not sent; a second abandons that request (it may be stored) and says so.
"""

from __future__ import annotations

import gzip
import signal
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from agentwatch.net.retry_after import retry_after_s

# a message stays one line, whatever the width; no markup: it quotes what the user or the server gave
console = Console(stderr=True, soft_wrap=True, markup=False)

GZIP_MAGIC = b"\x1f\x8b"
RETRY_STATUSES = frozenset({429, 503})  # the server refused the whole request for now: safe to send again
RETRY_ATTEMPTS = 5
RETRY_WAIT_CAP_S = 30.0
SHOWN_ERRORS = 20


@dataclass(frozen=True, slots=True)
class ReplayLine:
    number: int  # the line's number in the (decompressed) file, from 1
    raw: bytes
    ts: float | None


@dataclass
class ReplayTally:
    """What the server answered so far. ``through_line``: every line up to it was answered (stored
    or rejected); nothing after it was acknowledged."""

    accepted: int = 0
    rejected: int = 0
    through_line: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def reject(self, line: int, field_name: str, reason: str) -> None:
        self.rejected += 1
        self.errors.append({"line": line, "field": field_name, "reason": reason})

    def summary(self, finished: bool) -> dict[str, object]:
        doc: dict[str, object] = {"accepted": self.accepted, "rejected": self.rejected}
        if not finished:
            doc["through_line"] = self.through_line
        return doc


class ReplayStopped(Exception):
    """The server will not take the rest (unreachable, refused the credentials, failing)."""


class ReplayInterrupted(Exception):
    """Ctrl-C; ``in_flight`` names lines whose request was abandoned unanswered."""

    def __init__(self, in_flight: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.in_flight = in_flight


class CtrlC:
    """The first Ctrl-C asks the replay to stop once the request in flight is answered, so that
    what it reports stored is what the server acknowledged; a second one abandons that request."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: object = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _handle(self, _signum: int, _frame: object) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        console.print("interrupted: stopping once the request in flight is answered (Ctrl-C again to abandon it)")


def read_input(file: str) -> bytes:
    """The file's bytes (``-``: standard input), gzip inflated: a captured log is often compressed."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else _existing_file(file).read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file!r} ({exc.strerror or exc})", param_hint="FILE") from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise typer.BadParameter(f"not valid gzip data ({exc})", param_hint="FILE") from None


def _existing_file(file: str) -> Path:
    path = Path(file)
    if not path.exists():
        raise typer.BadParameter(f"{file!r} does not exist", param_hint="FILE")
    if path.is_dir():
        raise typer.BadParameter(f"{file!r} is a directory", param_hint="FILE")
    return path


def replay_lines(data: bytes, tally: ReplayTally) -> list[ReplayLine]:
    """The event lines, each with its line number; comments and blank lines are skipped, and a
    line that is not one JSON object is rejected here (the server would read a line holding an
    array as several events, and a batch opening with one as a single malformed array)."""
    lines = []
    for number, line in enumerate(data.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith((b"#", b"//")):
            continue
        try:
            doc = orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            tally.reject(number, "event", f"malformed JSON ({exc})")
            continue
        if not isinstance(doc, dict):
            tally.reject(number, "event", "must be one JSON object")
            continue
        lines.append(ReplayLine(number, s, _event_time(doc)))
    return lines


def _event_time(doc: dict[str, object]) -> float | None:
    from agentwatch.events.model import EventError, parse_ts

    ts = doc.get("ts")
    try:
        return parse_ts(ts) if isinstance(ts, str) and ts else None
    except EventError:
        return None


def server_url(server: str) -> httpx.URL:
    try:
        url = httpx.URL(server)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(str(exc), param_hint="--server") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise typer.BadParameter("must be an http:// or https:// URL", param_hint="--server")
    return url


def _error_message(r: httpx.Response) -> str:
    try:
        message = str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = r.text[:300]
    return " ".join(message.split()) or r.reason_phrase  # one line, whatever the server sent


def _retry_wait(r: httpx.Response, attempt: int) -> float:
    """The server's ``Retry-After`` (seconds or an HTTP date), else 1, 2, 4, ... s; at most 30 s."""
    asked = retry_after_s(r.headers)
    return min(float(2**attempt) if asked is None else asked, RETRY_WAIT_CAP_S)


def _post(client: httpx.Client, group: list[ReplayLine], stop: threading.Event) -> httpx.Response:
    """Post one group, sending it again while the server answers 429 or 503 (it took none of it)."""
    body = b"\n".join(line.raw for line in group)
    where = (group[0].number, group[-1].number)
    for attempt in range(RETRY_ATTEMPTS + 1):
        try:
            r = client.post("/api/v1/ingest", content=body)
        except KeyboardInterrupt:
            raise ReplayInterrupted(where) from None
        except httpx.ConnectError as exc:
            raise ReplayStopped(f"cannot reach the server ({exc})") from None
        except httpx.TransportError as exc:
            raise ReplayStopped(
                f"no answer for lines {where[0]}-{where[1]} ({exc or type(exc).__name__});"
                " the server may have stored them"
            ) from None
        if r.status_code not in RETRY_STATUSES or attempt == RETRY_ATTEMPTS:
            return r
        wait = _retry_wait(r, attempt)
        console.print(f"server answered {r.status_code} ({_error_message(r)}); sending again in {wait:.0f} s")
        if stop.wait(wait):
            raise ReplayInterrupted()
    raise AssertionError("unreachable")


def _send(client: httpx.Client, group: list[ReplayLine], tally: ReplayTally, stop: threading.Event) -> None:
    """Send ``group`` and count the answer; a request too large for the server goes again in halves."""
    r = _post(client, group, stop)
    if r.status_code == 413 and len(group) > 1:
        half = len(group) // 2
        _send(client, group[:half], tally, stop)
        _send(client, group[half:], tally, stop)
        return
    if r.status_code == 413:
        tally.reject(group[0].number, "event", _error_message(r))
    elif r.status_code >= 400:
        raise ReplayStopped(f"server answered {r.status_code}: {_error_message(r)}")
    else:
        _count(r, group, tally)
    tally.through_line = group[-1].number


def _count(r: httpx.Response, group: list[ReplayLine], tally: ReplayTally) -> None:
    try:
        doc = r.json()
        accepted, rejected, errors = int(doc["accepted"]), int(doc["rejected"]), list(doc["errors"])
    except (ValueError, KeyError, TypeError):
        raise ReplayStopped(f"server answered {r.status_code} without an ingest result: {r.text[:200]!r}") from None
    tally.accepted += accepted
    tally.rejected += rejected
    for err in errors:
        index = err.get("index") if isinstance(err, dict) else None
        line = group[index].number if isinstance(index, int) and 0 <= index < len(group) else group[0].number
        tally.errors.append({"line": line, "field": err.get("field"), "reason": err.get("reason")})


def groups(lines: list[ReplayLine], speed: float, batch: int) -> list[list[ReplayLine]]:
    if speed > 0:
        return [[line] for line in lines]
    return [lines[i : i + batch] for i in range(0, len(lines), batch)]


def _pace(line: ReplayLine, speed: float, clock: dict[str, float], stop: threading.Event) -> None:
    """Wait until ``line`` is due at ``speed`` times the pace of the events' own times."""
    if speed <= 0 or line.ts is None:
        return
    first = clock.setdefault("first_ts", line.ts)
    delay = (line.ts - first) / speed - (time.monotonic() - clock["started"])
    if delay > 0 and stop.wait(delay):
        raise ReplayInterrupted()


def report_errors(tally: ReplayTally) -> None:
    errors = sorted(tally.errors, key=lambda e: e["line"])  # type: ignore[arg-type,return-value]
    for err in errors[:SHOWN_ERRORS]:
        console.print(f"line {err['line']}: {err['field']}: {err['reason']}", highlight=False, markup=False)
    if len(errors) > SHOWN_ERRORS:
        console.print(f"... and {len(errors) - SHOWN_ERRORS} more rejected lines")


def send_groups(
    client: httpx.Client, groups: list[list[ReplayLine]], speed: float, tally: ReplayTally, stop: threading.Event
) -> None:
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("replay", total=sum(len(g) for g in groups))
        clock = {"started": time.monotonic()}
        for group in groups:
            if stop.is_set():
                raise ReplayInterrupted()
            _pace(group[0], speed, clock, stop)
            _send(client, group, tally, stop)
            progress.advance(task, len(group))
