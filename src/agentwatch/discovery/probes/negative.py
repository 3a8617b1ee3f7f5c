"""The negative check: does a random path answer like a real one?

Single-page apps, catch-all proxies and login walls answer 200 (or 401) for any
path, which is how naive scanners "find" LangServe on a React dev server. A
signal based only on a status code counts only when a random sibling path
answers with a different status; a service answering 2xx at a random root path
is marked catch-all, and scoring drops every unverified signal from it.
"""

from __future__ import annotations

import secrets

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.signals import Service


def _sibling(path: str) -> str:
    parent = path.rsplit("/", 1)[0] if path.count("/") > 1 else ""
    return f"{parent}/aw-{secrets.token_hex(6)}"


async def check_root(http: Http, service: Service) -> None:
    """Mark the service catch-all when a random top-level path answers 2xx."""
    probe_path = _sibling("/x")
    reply = await http.get(probe_path)
    if reply is not None and 200 <= reply.status < 300:
        service.catch_all = True
        service.catch_all_evidence = {"path": probe_path, "status": reply.status, "bytes": len(reply.body)}


async def distinct(http: Http, path: str, status: int) -> bool:
    """True when a random sibling of ``path`` answers with a different status than ``status``."""
    parent = path.rsplit("/", 1)[0] if path.count("/") > 1 else ""
    cached = http.service.negative
    if parent not in cached:
        reply = await http.get(_sibling(path))
        cached[parent] = None if reply is None else reply.status
    return cached[parent] != status
