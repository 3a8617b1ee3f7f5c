"""The test servers' port lookup: ports no client connection can take, never the same twice in a row."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support import server
from tests.support.server import free_port


def test_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20  # two lookups before either bind do not collide
    for port in ports:
        assert server.PORTS_FIRST <= port < min(low, server.PORTS_END)
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_passed_over() -> None:
    taken = []
    try:
        # hold the next ports this worker would hand out; the lookup must skip every one of them
        for _ in range(5):
            port = free_port()
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            taken.append(s)
        held = {s.getsockname()[1] for s in taken}
        # walk the whole slice: the held ports come round again and must be passed over
        seen = {free_port() for _ in range(server.SLICE)}
        assert not held & seen
    finally:
        for s in taken:
            s.close()
