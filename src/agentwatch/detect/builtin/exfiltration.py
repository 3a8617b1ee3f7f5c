"""Exfiltration: a sensitive read followed, within a window, by egress to a never-seen destination.

Each part alone is ordinary (agents read config files, agents call APIs); the
sequence in one scope (session, else agent, else host and process) is the
classic data theft pattern. "Never seen" is per host, over everything this
engine has observed (bounded), so a routine destination does not fire.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from agentwatch.detect.atr.views import text_of
from agentwatch.detect.builtin.base import BuiltinRule, Lru, host_of, scope_of, slim
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

# Our own patterns (alternations of literals, no nested repetition): safe for the backtracking engine,
# and stdlib ``re`` is much cheaper per call than the RE2 wrapper on the hot path.
SENSITIVE = re.compile(
    r"(?i)(\.aws/credentials|\.aws/config|\.ssh/id_[a-z0-9_]+|\.ssh/authorized_keys|/etc/shadow|\.netrc|"
    r"\.git-credentials|\.docker/config\.json|\.kube/config|\.config/gcloud|\.azure/|\.pgpass|"
    r"\.npmrc|\.pypirc|(?<![^\s\"'/=])\.env(?:\.[a-z]+)?(?![^\s\"'\\;|&)])|\.gnupg/|keychain|id_rsa|id_ed25519)"
)
URL = re.compile(r"(?i)\bhttps?://[^\s\"'<>]+")


WATCHED = frozenset({"file.open", "file.read", "agent.tool_call", "process.exec", "network.connect", "network.flow"})


def sensitive_target(event: Event) -> str | None:
    """The sensitive file an event reads, if any."""
    t = event.event_type
    data = event.data
    if t in ("file.open", "file.read"):
        path = data.get("path")
        if not isinstance(path, str) and isinstance(data.get("file"), dict):
            path = data["file"].get("path")
        if isinstance(path, str) and SENSITIVE.search(path):
            return path
    elif t == "agent.tool_call":
        args = text_of(data.get("arguments"))
        m = SENSITIVE.search(args)
        if m:
            return m.group(0)
    elif t == "process.exec":
        cmd = text_of(data.get("cmdline") or event.process.get("cmdline"))
        m = SENSITIVE.search(cmd)
        if m:
            return m.group(0)
    return None


def _public(dest: str) -> bool:
    try:
        ip = ipaddress.ip_address(dest)
    except ValueError:
        return dest not in ("localhost",) and not dest.endswith(".local")
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)


def destinations(event: Event) -> list[str]:
    """Where an event sends data to (host names or addresses)."""
    t = event.event_type
    data = event.data
    out: list[str] = []
    if t in ("network.connect", "network.flow"):
        dest = data.get("dest")
        if isinstance(dest, dict):
            for key in ("domain", "ip"):
                if isinstance(dest.get(key), str) and dest[key]:
                    out.append(dest[key].lower())
                    break
    elif t == "agent.tool_call":
        for m in URL.finditer(text_of(data.get("arguments"))):
            try:
                host = urlsplit(m.group(0)).hostname
            except ValueError:
                host = None
            if host:
                out.append(host.lower())
    return [d for d in dict.fromkeys(out) if _public(d)]


class SensitiveReadThenEgress(BuiltinRule):
    id = "AW-BUILTIN-EXFIL"
    title = "Sensitive read followed by egress to a never-seen destination"
    severity = 8
    tags = ["atlas.aml.t0025", "atlas.aml.t0057", "attack.t1041", "attack.t1552.001", "attack.exfiltration"]
    description = (
        "Within detection.exfil_window_s of reading a credential or secret file, the same session "
        "(or agent, or process) sent data to a destination this host had never contacted before."
    )

    def __init__(self, cap: int, window_s: float = 600.0) -> None:
        self.window_s = window_s
        self.reads: Lru[tuple[Event, str]] = Lru(cap)
        self.known: Lru[bool] = Lru(cap)

    def state_size(self) -> int:
        return len(self.reads) + len(self.known)

    def observe(self, event: Event) -> list[Finding]:
        if event.event_type not in WATCHED:
            return []
        target = sensitive_target(event)
        dests = destinations(event)
        if target is None and not dests:  # most watched events: neither part of the pattern
            return []
        scope = scope_of(event)
        if target is not None:
            prior = self.reads.get(scope)
            if prior is None or prior[0].ts <= event.ts:
                self.reads.put(scope, (slim(event), target))
        out: list[Finding] = []
        host = host_of(event)
        for dest in dests:
            novel = (host, dest) not in self.known
            self.known.put((host, dest), True)
            if not novel:
                continue
            read = self.reads.get(scope)
            if read is None:
                continue
            read_event, path = read
            if 0 <= event.ts - read_event.ts <= self.window_s:
                out.append(
                    self.finding(
                        [read_event, event],
                        f"{path!r} was read, then data went to never-seen {dest!r} "
                        f"{event.ts - read_event.ts:.0f} s later",
                        dedup_key=f"{scope}|{dest}",
                        sensitive=path,
                        destination=dest,
                        scope=scope,
                    )
                )
        return out
