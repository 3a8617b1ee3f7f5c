"""Alert delivery to webhooks, Slack, Teams and PagerDuty, shared by every alert source.

An output is built from a plain ``spec`` dict (``kind``, ``url``, ``min_severity``,
kind-specific fields) by :func:`build_output`, which validates it and puts the URL
through the SSRF guard. :func:`deliver` sends a list of alerts (dicts shaped like
``agentwatch.alerts.model.to_json``) to every output whose ``min_severity`` they
reach, concurrently, and reports per output; it never raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from agentwatch.notify.base import NotifyError
from agentwatch.notify.outputs import PagerDutyOutput, SlackOutput, TeamsOutput, WebhookOutput

__all__ = ["KINDS", "Notifier", "NotifyError", "build_output", "deliver", "reaches"]


@runtime_checkable
class Notifier(Protocol):
    kind: str  # "webhook" | "slack" | "teams" | "pagerduty"
    min_severity: int  # 0-10; alerts below are not sent

    async def send(self, alerts: list[dict]) -> None:
        """Deliver ``alerts``; raises NotifyError on delivery failure."""
        ...


Factory = Callable[..., Notifier]

KINDS: dict[str, Factory] = {
    "webhook": WebhookOutput.from_spec,
    "slack": SlackOutput.from_spec,
    "teams": TeamsOutput.from_spec,
    "pagerduty": PagerDutyOutput.from_spec,
}


def build_output(spec: dict, *, allow_private: bool = False) -> Notifier:
    """A notifier from its spec; raises ValueError naming the field and the rule."""
    if not isinstance(spec, dict):
        raise ValueError("output: must be an object")
    kind = spec.get("kind")
    factory = KINDS.get(kind) if isinstance(kind, str) else None
    if factory is None:
        raise ValueError(f"kind: must be one of {', '.join(sorted(KINDS))}")
    return factory(spec, allow_private=allow_private)


def _severity(alert: dict) -> int:
    try:
        return int(alert.get("severity", 0))
    except (TypeError, ValueError):
        return 0


def reaches(alert: dict, output: Notifier) -> bool:
    """Whether ``alert`` is severe enough for ``output``."""
    return _severity(alert) >= output.min_severity


async def _send_one(output: Notifier, alerts: list[dict], timeout: float) -> dict[str, Any]:
    chosen = [a for a in alerts if reaches(a, output)]
    result: dict[str, Any] = {
        "kind": output.kind,
        "name": getattr(output, "name", output.kind),
        "sent": 0,
        "skipped": len(alerts) - len(chosen),
        "ok": True,
        "error": None,
    }
    if not chosen:
        return result
    try:
        await asyncio.wait_for(output.send(chosen), timeout)
        result["sent"] = len(chosen)
    except NotifyError as exc:
        result.update(ok=False, error=str(exc))
    except TimeoutError:
        result.update(ok=False, error=f"timed out after {timeout:g} s")
    except Exception as exc:  # an output must never break the caller
        result.update(ok=False, error=f"{type(exc).__name__}: delivery failed")
    return result


async def deliver(outputs: list[Notifier], alerts: list[dict], *, timeout: float = 30.0) -> list[dict]:
    """Send ``alerts`` to each output at or above its minimum severity; one result per output."""
    if not outputs:
        return []
    return list(await asyncio.gather(*(_send_one(o, alerts, timeout) for o in outputs)))


def register_outputs(registry: Any) -> None:
    """Register the built-in kinds at ``registry.alert_outputs`` (kind -> factory(spec, allow_private=))."""
    for kind, factory in KINDS.items():
        if kind not in registry.alert_outputs:
            registry.alert_outputs.register(kind, factory)
