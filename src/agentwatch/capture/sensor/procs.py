"""Process and connection polling through psutil (``/proc``), no privileges needed for own-user processes.

A poll diffs the set of (pid, create_time) against the previous one: new ones are
``process.exec``, vanished ones ``process.exit``. Connections are diffed the same way per
(pid, local, remote); only outbound TCP connections in ESTABLISHED/SYN_SENT are reported.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from agentwatch.capture.gateway.identify import ProviderIndex
from agentwatch.capture.sensor.agents import AgentMatch, classify

HOSTNAME = socket.gethostname()
OUTBOUND = {psutil.CONN_ESTABLISHED, psutil.CONN_SYN_SENT}
ANY_V4, ANY_V6 = "0.0.0.0", "::"  # noqa: S104 - wildcard listeners, compared against, never bound
YOUNG_S = 3.0  # processes this young are re-read each poll to catch their exec after fork
LLM_PORTS = {11434: "ollama", 1234: "lmstudio"}


@dataclass
class ProcInfo:
    pid: int
    ppid: int | None
    name: str
    exe: str
    cmdline: list[str]
    cwd: str
    user: str
    uid: int | None
    create_time: float
    agent: AgentMatch | None = None

    def envelope_process(self) -> dict[str, Any]:
        p: dict[str, Any] = {"pid": self.pid, "name": self.name[:256]}
        if self.ppid is not None:
            p["ppid"] = self.ppid
        if self.exe:
            p["exe"] = self.exe[:4096]
        if self.cmdline:
            p["cmdline"] = " ".join(self.cmdline)[:8192]
            p["cmdline_args"] = [a[:1024] for a in self.cmdline[:256]]
        if self.cwd:
            p["cwd"] = self.cwd[:4096]
        return p


def text(value: str) -> str:
    """``value`` as valid UTF-8 text: psutil and inotify give undecodable bytes of names, paths and
    arguments as lone surrogates (``surrogateescape``), which JSON cannot carry; they become U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate no byte was escaped to
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


def read_proc(p: psutil.Process) -> ProcInfo | None:
    try:
        with p.oneshot():
            info = ProcInfo(
                pid=p.pid,
                ppid=p.ppid(),
                name=text(p.name()),
                exe=text(_safe(p.exe, "")),
                cmdline=[text(a) for a in _safe(p.cmdline, [])],
                cwd=text(_safe(p.cwd, "")),
                user=text(_safe(p.username, "")),
                uid=_safe(lambda: p.uids().real, None),
                create_time=p.create_time(),
            )
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None
    info.agent = classify(info.name, " ".join(info.cmdline))
    return info


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess, OSError):
        return default


def base_event(event_type: str, ts: float, proc: ProcInfo | None, capture_point: str) -> dict[str, Any]:
    from agentwatch.events.model import iso

    body: dict[str, Any] = {
        "oisp_version": "0.1",
        "event_type": event_type,
        "ts": iso(ts),
        "host": {"hostname": HOSTNAME},
        "source": {"collector": "agentwatch-sensor", "capture_method": "other", "capture_point": capture_point},
        "confidence": {"level": "medium", "completeness": "partial", "reasons": ["procfs_polling"]},
    }
    if proc is not None:
        body["process"] = proc.envelope_process()
        actor: dict[str, Any] = {}
        if proc.user:
            actor["user"] = proc.user[:256]
        if proc.uid is not None:
            actor["uid"] = proc.uid
        if actor:
            body["actor"] = actor
        if proc.agent is not None:
            body["attrs"] = {"agent.name": proc.agent.name, "agent.detection": proc.agent.reason}
    return body


@dataclass
class ProcessPoller:
    """Diffs process and connection tables; ``poll()`` returns the new OISP event bodies."""

    index: ProviderIndex
    own_pid: int = field(default_factory=os.getpid)
    procs: dict[int, ProcInfo] = field(default_factory=dict)
    conns: set[tuple[int, str, int, str, int]] = field(default_factory=set)
    llm_clients: set[int] = field(default_factory=set)
    primed: bool = False

    def poll(self) -> list[dict[str, Any]]:
        now = time.time()
        out: list[dict[str, Any]] = []
        seen: dict[int, ProcInfo] = {}
        for p in psutil.process_iter():
            prev = self.procs.get(p.pid)
            try:
                ctime = p.create_time()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if prev is not None and abs(prev.create_time - ctime) < 0.01:
                # a young process may have been seen between fork and exec: look again
                if now - ctime < YOUNG_S and self.primed:
                    again = read_proc(p)
                    if again is not None and (again.exe, again.cmdline) != (prev.exe, prev.cmdline):
                        seen[p.pid] = again
                        out.append(self._exec(again))
                        continue
                seen[p.pid] = prev
                continue
            info = read_proc(p)
            if info is None:
                continue
            seen[p.pid] = info
            if self.primed:
                out.append(self._exec(info))
        for pid, info in self.procs.items():
            if pid not in seen or abs(seen[pid].create_time - info.create_time) >= 0.01:
                out.append(self._exit(info, now))
        self.procs = seen
        out += self._connections(now)
        self.primed = True
        return out

    def _exec(self, info: ProcInfo) -> dict[str, Any]:
        body = base_event("process.exec", info.create_time, info, "proc_scan")
        data: dict[str, Any] = {"exe": info.exe or info.name}
        if info.cmdline:
            data["args"] = [a[:1024] for a in info.cmdline[:256]]
        if info.cwd:
            data["cwd"] = info.cwd[:4096]
        name = os.path.basename(info.exe or info.name)
        data["is_shell"] = name in ("sh", "bash", "zsh", "dash", "fish", "ksh")
        if name.startswith(("python", "node", "ruby", "perl", "bun", "deno")) and len(info.cmdline) > 1:
            data["interpreter"] = info.exe or name
            script = next((a for a in info.cmdline[1:] if not a.startswith("-")), None)
            if script:
                data["script_path"] = script[:4096]
                data["is_script"] = True
        parent = self.procs.get(info.ppid or -1)
        if parent is not None:
            body["process"]["parent"] = {"pid": parent.pid, "name": parent.name[:256], "exe": parent.exe[:4096]}
            # a stdio MCP server is a child of an agent that speaks to it over pipes
            if info.agent is not None and info.agent.reason == "mcp_server_stdio" and parent.agent is not None:
                body["attrs"]["mcp.client"] = parent.agent.name
        body["data"] = data
        return body

    def _exit(self, info: ProcInfo, now: float) -> dict[str, Any]:
        body = base_event("process.exit", now, info, "proc_scan")
        body["process"] = {"pid": info.pid, "name": info.name[:256], **({"ppid": info.ppid} if info.ppid else {})}
        body["data"] = {"exit_code": -1, "runtime_ms": max(0, int((now - info.create_time) * 1000))}
        body["confidence"]["limitations"] = ["exit_code_not_observable_without_privileges"]
        self.llm_clients.discard(info.pid)
        return body

    def _connections(self, now: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            conns = psutil.net_connections(kind="tcp")
        except (psutil.AccessDenied, OSError):
            return out
        listening = {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
        current: set[tuple[int, str, int, str, int]] = set()
        for c in conns:
            if not c.pid or not c.raddr or c.status not in OUTBOUND:
                continue
            port = c.laddr.port
            if (c.laddr.ip, port) in listening or (ANY_V4, port) in listening or (ANY_V6, port) in listening:
                # accepted by a local listener: inbound, not a connect
                continue
            key = (c.pid, c.laddr.ip, c.laddr.port, c.raddr.ip, c.raddr.port)
            current.add(key)
            if key in self.conns or c.pid == self.own_pid or not self.primed:
                continue
            out.append(self._connect_event(c, now))
        self.conns = current
        return out

    def _connect_event(self, c: Any, now: float) -> dict[str, Any]:
        info = self.procs.get(c.pid)
        body = base_event("network.connect", now, info, "socket_scan")
        body["confidence"]["process_attribution"] = "socket_inode"
        dest: dict[str, Any] = {"ip": c.raddr.ip, "port": c.raddr.port}
        with contextlib.suppress(ValueError):
            dest["is_private"] = not ipaddress.ip_address(c.raddr.ip).is_global
        body["data"] = {
            "dest": dest,
            "src": {"ip": c.laddr.ip, "port": c.laddr.port},
            "protocol": "tcp",
            "success": c.status == psutil.CONN_ESTABLISHED,
        }
        provider = self.index.by_host(c.raddr.ip, c.raddr.port) or LLM_PORTS.get(c.raddr.port)
        if provider:
            attrs = body.setdefault("attrs", {})
            attrs["llm.provider"] = provider
            attrs.setdefault("agent.detection", "llm_api_client")
            self.llm_clients.add(c.pid)
        return body
