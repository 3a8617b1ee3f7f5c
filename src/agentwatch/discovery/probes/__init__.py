"""One module per protocol. Each HTTP probe is ``async probe(http, service) -> list[Signal]``.

``DETECTORS`` maps the detector names a scan can select (agentsniff's names where
they exist) to the probe functions that implement them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.probes import a2a, agentpin, fingerprints, mcp, ollama, openai_compat, openapi
from agentwatch.discovery.signals import Service, Signal

HttpProbe = Callable[[Http, Service], Awaitable[list[Signal]]]

# detector name -> HTTP probes it runs (the TCP, TLS and negative checks run for every open port)
DETECTORS: dict[str, tuple[HttpProbe, ...]] = {
    "port_scanner": (),
    "tls_fingerprint": (),
    "endpoint_prober": (fingerprints.probe, openapi.probe),
    "openai_api": (openai_compat.probe,),
    "ollama": (ollama.probe,),
    "mcp_detector": (mcp.probe_streamable, mcp.probe_legacy_sse),
    "a2a": (a2a.probe,),
    "agentpin_prober": (agentpin.probe,),
}
# agentsniff names accepted for compatibility: sse_detector is our legacy-SSE MCP probe;
# the passive ones have no active equivalent (agentwatch learns that from telemetry).
ALIASES = {"sse_detector": "mcp_detector"}
PASSIVE = frozenset({"dns_monitor", "traffic_analyzer"})
DEFAULT_DETECTORS = tuple(DETECTORS)
