"""Which local process sent a gateway request: the owner of the client's TCP socket.

For a client on this host, the kernel's socket table (``/proc/net/tcp{,6}``) has the client's
end of the connection (local port = the client's port, remote port = ours) and its inode;
the process holding that inode in ``/proc/<pid>/fd`` sent the request. Agents keep their
connections alive, so one lookup serves many requests (cached per connection). Linux only;
processes of other users are found only when agentwatch runs as root.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import psutil

from agentwatch.capture.sensor.agents import classify

TTL_S = 60.0
MAX_CACHED = 4096
TCP_ESTABLISHED = "01"


def _socket_inode(client_port: int, server_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    parts = line.split()
                    if len(parts) < 10 or parts[3] != TCP_ESTABLISHED:
                        continue
                    local, remote = parts[1], parts[2]
                    if (
                        int(local.rsplit(":", 1)[1], 16) == client_port
                        and int(remote.rsplit(":", 1)[1], 16) == server_port
                    ):
                        return parts[9]
        except OSError:
            continue
    return None


def _inode_owner(inode: str) -> int | None:
    target = f"socket:[{inode}]"
    with os.scandir("/proc") as procs:
        pids = [e.name for e in procs if e.name.isdigit()]
    for pid in pids:
        try:
            with os.scandir(f"/proc/{pid}/fd") as fds:
                for fd in fds:
                    try:
                        if os.readlink(fd.path) == target:
                            return int(pid)
                    except OSError:
                        continue
        except OSError:
            continue
    return None


def describe(pid: int) -> dict[str, Any] | None:
    """The OISP ``process`` object of a pid, plus the agent it looks like (under ``_agent``)."""
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            info: dict[str, Any] = {"pid": pid, "ppid": p.ppid(), "name": p.name()[:256]}
            try:
                info["exe"] = p.exe()[:4096]
                cmd = p.cmdline()
                info["cmdline"] = " ".join(cmd)[:8192]
                info["cwd"] = p.cwd()[:4096]
            except (psutil.AccessDenied, OSError):
                cmd = []
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    agent = classify(info["name"], " ".join(cmd))
    if agent is not None:
        info["_agent"] = agent.name
    return info


class Attribution:
    def __init__(self) -> None:
        self.cache: OrderedDict[tuple[int, int], tuple[float, dict[str, Any] | None]] = OrderedDict()
        self.enabled = os.path.exists("/proc/net/tcp")

    def cached(self, client_port: int, server_port: int) -> tuple[bool, dict[str, Any] | None]:
        hit = self.cache.get((client_port, server_port))
        if hit is None or time.monotonic() - hit[0] > TTL_S:
            return False, None
        return True, hit[1]

    def resolve(self, client_port: int, server_port: int) -> dict[str, Any] | None:
        """Blocking (reads /proc): call it off the event loop."""
        found, info = self.cached(client_port, server_port)
        if found:
            return info
        info = None
        if self.enabled:
            inode = _socket_inode(client_port, server_port)
            pid = _inode_owner(inode) if inode and inode != "0" else None
            info = describe(pid) if pid else None
        self.cache[(client_port, server_port)] = (time.monotonic(), info)
        while len(self.cache) > MAX_CACHED:
            self.cache.popitem(last=False)
        return info
