"""The SDK's options, checked when a client is made: a setting that can never work is refused
there, naming the option, not found out event after event in the background."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

import httpx

MAX_SECONDS = 86_400
API_KEY_RE = re.compile(r"^[\x21-\x7e]{1,4096}$")  # what an HTTP header value can carry as is


def shared_spill_path() -> Path:
    """The name the default spill paths are made from (``$AGENTWATCH_SDK_SPILL``, or one in the
    home directory). Earlier versions spilled the events of every collector into this one file."""
    return Path(os.environ.get("AGENTWATCH_SDK_SPILL") or "~/.agentwatch/sdk-spill.jsonl").expanduser()


def default_spill_path(events_url: str) -> Path:
    """The spill file of one collector: the shared base with a short hash of the collector's
    normalized ``/events`` URL (no credentials) in its name, so that a client never replays
    events spilled for another collector."""
    base = shared_spill_path()
    if not base.name or base.name == "..":
        raise ValueError("AGENTWATCH_SDK_SPILL: must name a file, like ~/.agentwatch/sdk-spill.jsonl")
    digest = hashlib.sha256(events_url.encode()).hexdigest()[:12]
    return base.with_name(f"{base.stem}-{digest}{base.suffix}")


def collector_url(url: Any) -> tuple[str, tuple[str, str] | None]:
    """The ``/events`` URL, and the credentials a ``user:password@`` part carried (sent as basic
    auth so that they never appear in a logged URL). A URL that can never work is refused here,
    not found out event after event in the background."""
    rule = "must be an http:// or https:// URL naming a host, like http://127.0.0.1:7777"
    if not isinstance(url, str):
        raise ValueError(f"url: {rule}")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except Exception:
        raise ValueError(f"url: {rule}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host or "%" in parsed.host:
        raise ValueError(f"url: {rule}")
    if port is not None and not 0 < port < 65536:
        raise ValueError("url: the port must be between 1 and 65535")
    if parsed.query or parsed.fragment:
        raise ValueError("url: must not carry a query or a fragment (the SDK adds /events to it)")
    auth = None
    if parsed.userinfo:
        auth = (parsed.username, parsed.password)
        parsed = parsed.copy_with(username=None, password=None)
    return str(parsed).rstrip("/") + "/events", auth


def check_api_key(api_key: Any) -> None:
    """The message never quotes the key: a traceback in an agent's log must not carry it."""
    if api_key is None:
        return
    if not isinstance(api_key, str) or API_KEY_RE.match(api_key) is None:
        raise ValueError("api_key: must be printable ASCII without spaces or control characters")


def seconds_option(name: str, value: Any, *, zero: bool = False) -> float:
    """A duration in seconds: finite and at most a day (a thread cannot wait for ``inf``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero) or value > MAX_SECONDS:
        low = ">= 0" if zero else "> 0"
        raise ValueError(f"{name}: must be a number of seconds {low} and <= {MAX_SECONDS}")
    return float(value)


def count_option(name: str, value: Any) -> int:
    """A count: an integer, taken as at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer")
    return max(1, value)


def size_option(name: str, value: Any) -> int:
    """A size in bytes: an integer of at least 1 (unlike a count, a nonsensical one is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be an integer number of bytes >= 1")
    return value


def transport_factory_option(factory: Any, transport: Any) -> Any:
    """A callable that makes a new httpx transport (``httpx.HTTPTransport`` itself will do); it
    replaces ``transport``, so the two are not given together."""
    if factory is None:
        return None
    if isinstance(factory, httpx.BaseTransport) or not callable(factory):
        raise ValueError(
            "transport_factory: must be a callable that returns a new httpx transport "
            "(a transport itself goes in transport=)"
        )
    if transport is not None:
        raise ValueError("transport_factory: give either transport or transport_factory, not both")
    return factory
