"""Evening out connections between the processes of ``serve --processes N``.

The kernel gives each new connection to one process's ``SO_REUSEPORT`` socket by a hash of
its addresses and ports, so a client that opens a few long-lived keep-alive connections may
find them all on one process while the others idle: four connections opened at once land
4-0 in one trial of eight and 3-1 in four, and batched ingest then runs at a third to two
thirds of what the same server does with them 2-2. Each process therefore looks, as it takes
a connection, at how many every process holds; when it would hold two more than the least
loaded one, it hands the connection over before reading a byte of it: the socket travels
over a Unix datagram socket (``SCM_RIGHTS``) and the other process serves it as if it had
accepted it. The client sees nothing but its answers, from the other process.

The processes keep their counts in a small shared table the parent makes (``create_table``):
for each process the connections it holds (which it writes itself) and those handed to it and
not yet taken up (which the sender adds and the receiver takes off). Each decision reads and
writes the table under an exclusive ``flock`` of the file, so two processes taking
connections at once both see the other's. A process that is not up yet, or died, has no
handover socket: the sender keeps the connection. A process started again resets its row.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import structlog

try:
    import fcntl
except ImportError:  # not on POSIX: no balancing (``available`` is False)
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("agentwatch.processes")

BALANCE_ENV = "AGENTWATCH_BALANCE_DIR"
TABLE = "table"
ROW = struct.Struct("<qq")  # connections held, connections handed over and not yet taken up
MARGIN = 2  # hand a connection over when this process would hold this many more than another
REFRESH_S = 1.0  # how often a process writes its count unprompted (upgraded WebSockets end unseen)
available = fcntl is not None and hasattr(socket, "SCM_RIGHTS")


def create_table(directory: str, processes: int) -> None:
    """Make the zeroed table in ``directory`` (the parent, before it starts the processes)."""
    fd = os.open(os.path.join(directory, TABLE), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, processes * ROW.size)
    finally:
        os.close(fd)


def socket_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"{index}.sock")


class Balancer:
    """Process ``index`` of ``count``'s view of the table in ``directory`` (see the module
    docstring). Used from the event loop's thread only."""

    def __init__(self, directory: str, index: int, count: int) -> None:
        if not available:
            raise RuntimeError("balancing connections needs POSIX file locks and SCM_RIGHTS")
        self.directory = directory
        self.index = index
        self.count = count
        self._fd = os.open(os.path.join(directory, TABLE), os.O_RDWR)
        try:
            size = os.fstat(self._fd).st_size
            if size != count * ROW.size:
                raise ValueError(f"{directory}: a table of {size} bytes, not {count} rows")
            self._map = mmap.mmap(self._fd, size)
        except BaseException:
            os.close(self._fd)
            raise
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._in: socket.socket | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        with self._locked():
            ROW.pack_into(self._map, index * ROW.size, 0, 0)  # what a process before it held died with it

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _row(self, i: int) -> tuple[int, int]:
        return ROW.unpack_from(self._map, i * ROW.size)

    def _set(self, i: int, held: int, incoming: int) -> None:
        ROW.pack_into(self._map, i * ROW.size, held, max(0, incoming))

    def loads(self) -> list[int]:
        """Each process's connections, held or on their way to it."""
        with self._locked():
            return [sum(self._row(i)) for i in range(self.count)]

    def choose(self, held: int) -> int | None:
        """This process holds ``held`` connections besides a new one: the process to hand the
        new one to (its count already raised), or None to keep it (this process's raised)."""
        with self._locked():
            _, incoming = self._row(self.index)
            mine = held + 1 + incoming
            target, least = None, mine
            for i in range(self.count):
                if i != self.index:
                    load = sum(self._row(i))
                    if load < least:
                        target, least = i, load
            if target is None or mine - least < MARGIN:
                self._set(self.index, held + 1, incoming)
                return None
            theirs = self._row(target)
            self._set(target, theirs[0], theirs[1] + 1)
            self._set(self.index, held, incoming)
            return target

    def note(self, held: int) -> None:
        """Write the number of connections this process holds now."""
        with self._locked():
            self._set(self.index, held, self._row(self.index)[1])

    def took_up(self, held: int) -> None:
        """A connection handed to this process is taken up (or lost on the way): it holds ``held``."""
        with self._locked():
            self._set(self.index, held, self._row(self.index)[1] - 1)

    def _not_sent(self, target: int) -> None:
        with self._locked():
            theirs = self._row(target)
            self._set(target, theirs[0], theirs[1] - 1)

    def hand_over(self, target: int, fd: int) -> bool:
        """Send the connection ``fd`` to process ``target``; False (its count put back) when it
        cannot take it now: not up yet, gone, or its queue full."""
        try:
            # (``socket.send_fds`` drops its address argument: sendmsg takes it)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            self._out.sendmsg([b"c"], rights, 0, socket_path(self.directory, target))
        except OSError as exc:
            log.debug("processes.handover_failed", target=target, error=type(exc).__name__)
            self._not_sent(target)
            return False
        return True

    def listen(self, adopt: Callable[[socket.socket], Any], held: Callable[[], int]) -> None:
        """Take up the connections sent to this process: ``adopt`` each (on the running loop).
        Also writes ``held()`` every ``REFRESH_S``."""
        loop = self._loop = asyncio.get_running_loop()
        path = socket_path(self.directory, self.index)
        with suppress(FileNotFoundError):
            os.unlink(path)  # a process before it at this index left it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        self._in = sock

        def readable() -> None:
            while True:
                try:
                    _msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 8)
                except (BlockingIOError, InterruptedError):
                    return
                for fd in fds:
                    try:
                        conn = socket.socket(fileno=fd)
                    except OSError:  # not a socket: nothing a sibling sends
                        os.close(fd)
                        self.took_up(held())
                        continue
                    conn.setblocking(False)
                    adopt(conn)  # which calls ``took_up`` once the connection is made (or failed)

        def refresh() -> None:
            self.note(held())
            self._refresh = loop.call_later(REFRESH_S, refresh)

        loop.add_reader(sock.fileno(), readable)
        self._refresh = loop.call_later(REFRESH_S, refresh)

    def stop_listening(self) -> None:
        """Take up no more connections (a stopping process); its row stays, kept current by
        ``note`` as the connections it holds end."""
        if self._refresh is not None:
            self._refresh.cancel()
        if self._in is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._in.fileno())
            self._in.close()
            self._in = None
            with suppress(FileNotFoundError):
                os.unlink(socket_path(self.directory, self.index))

    def close(self) -> None:
        self.stop_listening()
        self._out.close()
        self._map.close()
        os.close(self._fd)
