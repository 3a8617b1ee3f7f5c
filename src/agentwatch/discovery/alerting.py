"""Scanner alerts: findings on change (new agent, new MCP tool, agent gone) and their delivery settings.

Alerts are recorded through ``aw.alerts`` like every other alert, so they show up in
the alert list, the live stream and the SOC views; delivery to the outputs
configured here goes through :mod:`agentwatch.notify`. Settings are persisted in
the key-value store; each change is appended to a change log (who, when, which
fields; never the secrets) and logged as an audit event.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentwatch.masking import mask_url
from agentwatch.notify import Notifier, build_output
from agentwatch.notify.base import get_headers
from agentwatch.pipeline.pipeline import Finding

MASK = "********"
KV_KEY = "discovery.alert_settings"
KV_LOG = "discovery.alert_settings.log"
LOG_KEEP = 200
LEVELS = ("low", "medium", "high", "confirmed")
NEW_AGENT_SEVERITY = {"low": 3, "medium": 4, "high": 5, "confirmed": 6}

DEFAULTS: dict[str, Any] = {
    "alert_enabled": False,
    "alert_min_confidence": "low",
    "alert_on_new_agent": True,
    "alert_on_new_tool": True,
    "alert_on_gone": True,
    "min_severity": 0,
    "webhook_url": "",
    "webhook_headers": {},
    "webhook_secret": "",
    "outputs": [],
}
SECRET_KEYS = ("secret", "routing_key")


def shown_url(url: Any) -> Any:
    """An output URL as settings readers see it: host only. The path of a Slack, Teams or
    Workflows webhook is its credential, and ``settings:read`` is not a secret-holder's permission."""
    return mask_url(url, hide_path=True) if isinstance(url, str) and url else url


class AlertSettingsUpdate(BaseModel):
    """PUT /api/settings body: only the fields present change (agentsniff's semantics)."""

    model_config = ConfigDict(extra="forbid")

    alert_enabled: bool | None = None
    alert_min_confidence: Literal["low", "medium", "high", "confirmed"] | None = None
    alert_on_new_agent: bool | None = None
    alert_on_new_tool: bool | None = None
    alert_on_gone: bool | None = None
    min_severity: int | None = Field(None, ge=0, le=10)
    webhook_url: str | None = Field(None, max_length=2048)
    webhook_headers: dict[str, str] | None = Field(None, max_length=16)
    webhook_secret: str | None = Field(None, max_length=512)
    outputs: list[dict[str, Any]] | None = Field(None, max_length=16)


def merge(stored: dict[str, Any], update: AlertSettingsUpdate) -> tuple[dict[str, Any], list[str]]:
    """The new settings and the names of the fields that changed; masked secrets keep their old value."""
    new = {**DEFAULTS, **stored}
    changed: list[str] = []
    for key, value in update.model_dump(exclude_unset=True).items():
        if value is None:
            continue
        if key == "webhook_secret" and value == MASK:
            continue
        if key == "webhook_url" and value and value == shown_url(new.get("webhook_url")):
            continue  # the masked URL sent back: the stored one stays
        if key == "webhook_headers":
            value = {k: (new["webhook_headers"].get(k, "") if v == MASK else v) for k, v in value.items()}
        if key == "outputs":
            value = [_unmask_output(o, new["outputs"], i) for i, o in enumerate(value)]
        if new.get(key) != value:
            changed.append(key)
        new[key] = value
    return new, changed


def _unmask_output(spec: dict[str, Any], old: list[dict[str, Any]], index: int) -> dict[str, Any]:
    if not isinstance(spec, dict):
        return spec
    prior = next((o for o in old if o.get("name") and o.get("name") == spec.get("name")), None)
    if prior is None and index < len(old) and old[index].get("kind") == spec.get("kind"):
        prior = old[index]
    out = dict(spec)
    for key in SECRET_KEYS:
        if out.get(key) == MASK:
            out[key] = (prior or {}).get(key)
    if prior is not None and out.get("url") and out.get("url") == shown_url(prior.get("url")):
        out["url"] = prior["url"]
    if isinstance(out.get("headers"), dict):
        old_headers = (prior or {}).get("headers") or {}
        out["headers"] = {k: (old_headers.get(k, "") if v == MASK else v) for k, v in out["headers"].items()}
    return out


def masked(settings: dict[str, Any]) -> dict[str, Any]:
    out = {**DEFAULTS, **settings}
    out["webhook_url"] = shown_url(out.get("webhook_url"))
    out["webhook_secret"] = MASK if out.get("webhook_secret") else ""
    out["webhook_headers"] = dict.fromkeys(out.get("webhook_headers") or {}, MASK)
    outputs = []
    for spec in out.get("outputs") or []:
        s = dict(spec)
        s["url"] = shown_url(s.get("url"))
        for key in SECRET_KEYS:
            if s.get(key):
                s[key] = MASK
        if isinstance(s.get("headers"), dict):
            s["headers"] = dict.fromkeys(s["headers"], MASK)
        outputs.append(s)
    out["outputs"] = outputs
    return out


def build_notifiers(settings: dict[str, Any], *, allow_private: bool) -> list[Notifier]:
    """The outputs of these settings; ValueError names the field (``outputs[1].url: ...``)."""
    result: list[Notifier] = []
    if settings.get("webhook_headers"):  # checked even while no URL is set: they are stored now
        try:
            get_headers({"headers": settings["webhook_headers"]})
        except ValueError as exc:
            raise ValueError(f"webhook_{exc}") from None
    if settings.get("webhook_url"):
        spec: dict[str, Any] = {
            "kind": "webhook",
            "name": "webhook",
            "url": settings["webhook_url"],
            "min_severity": settings.get("min_severity", 0),
        }
        if settings.get("webhook_headers"):
            spec["headers"] = settings["webhook_headers"]
        if settings.get("webhook_secret"):
            spec["secret"] = settings["webhook_secret"]
        try:
            result.append(build_output(spec, allow_private=allow_private))
        except ValueError as exc:
            raise ValueError(f"webhook_{exc}" if str(exc).startswith(("url", "headers")) else str(exc)) from None
    for i, spec in enumerate(settings.get("outputs") or []):
        try:
            result.append(build_output(spec, allow_private=allow_private))
        except ValueError as exc:
            raise ValueError(f"outputs[{i}].{exc}") from None
    return result


def change_findings(
    diff: dict[str, Any], settings: dict[str, Any], *, scan_id: str, now: float | None = None
) -> list[Finding]:
    """Findings for what changed in one scan (or in telemetry): never for what merely stayed."""
    now = now or time.time()
    s = {**DEFAULTS, **settings}
    floor = LEVELS.index(s["alert_min_confidence"])
    out: list[Finding] = []
    if s["alert_on_new_agent"]:
        for a in diff.get("new", []):
            if LEVELS.index(a.get("confidence_level") or "low") < floor:
                continue
            where = f"{a['ip_address']}:{a['port']}" if a.get("port") else str(a.get("ip_address"))
            out.append(
                Finding(
                    detector="discovery",
                    rule_id="discovery.new_agent",
                    title=f"New AI agent: {a.get('framework')} ({a.get('agent_type')}) at {where}",
                    message=f"{'Returned' if a.get('returned') else 'New'} {a.get('agent_type')} {a.get('framework')} "
                    f"at {where} ({a.get('protocol')}), confidence {a.get('confidence_level')}; scan {scan_id}",
                    severity=NEW_AGENT_SEVERITY.get(a.get("confidence_level") or "low", 3),
                    events=[],
                    alert_type="discovery",
                    tags=["discovery", "new_agent"],
                    dedup_key=f"new:{a['id']}:{scan_id}",
                    ts=now,
                    details={"agent": a, "scan_id": scan_id},
                )
            )
    if s["alert_on_new_tool"]:
        for a in diff.get("changed", []):
            for tool in a.get("new_tools", []):
                out.append(
                    Finding(
                        detector="discovery",
                        rule_id="discovery.new_mcp_tool",
                        title=f"New MCP tool {tool!r} on {a['ip_address']}:{a['port']}",
                        message=f"The MCP server at {a['ip_address']}:{a['port']} now offers the tool {tool!r}; "
                        f"review it before agents use it (scan {scan_id})",
                        severity=6,
                        events=[],
                        alert_type="discovery",
                        tags=["discovery", "mcp", "new_tool"],
                        dedup_key=f"tool:{a['id']}:{tool}",
                        ts=now,
                        details={
                            "agent": {k: v for k, v in a.items() if k != "new_tools"},
                            "tool": tool,
                            "scan_id": scan_id,
                        },
                    )
                )
    if s["alert_on_gone"]:
        for a in diff.get("gone", []):
            out.append(
                Finding(
                    detector="discovery",
                    rule_id="discovery.agent_gone",
                    title=f"AI agent gone: {a.get('framework')} at {a['ip_address']}:{a['port']}",
                    message=f"{a.get('agent_type')} {a.get('framework')} at {a['ip_address']}:{a['port']} "
                    f"did not answer scan {scan_id}",
                    severity=2,
                    events=[],
                    alert_type="discovery",
                    tags=["discovery", "gone"],
                    dedup_key=f"gone:{a['id']}:{scan_id}",
                    ts=now,
                    details={"agent": a, "scan_id": scan_id},
                )
            )
    return out


def test_alert() -> dict[str, Any]:
    """A synthetic alert in the shape of ``alerts.model.to_json``, for POST /api/settings/test."""
    from agentwatch.events.model import iso

    now = iso(time.time())
    return {
        "id": "00000000-0000-5000-8000-000000000000",
        "type": "discovery",
        "detector": "discovery",
        "rule_id": "discovery.test",
        "title": "agentwatch test alert",
        "message": "This is a test alert from the agentwatch scanner settings.",
        "severity": 10,
        "severity_label": "critical",
        "status": "open",
        "count": 1,
        "first_seen": now,
        "last_seen": now,
        "created_at": now,
        "updated_at": now,
        "session_id": None,
        "tags": ["test"],
        "entities": [],
        "event_ids": [],
        "details": {"test": True},
    }
