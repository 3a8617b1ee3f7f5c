"""Automatic evidence: what agentwatch itself shows about a control, computed on every read.

Three kinds of check, from the control's ``automatic`` map in the library:

- rules: the mapped rules (by id, and every rule carrying a mapped tag or a tag below it) that
  the running engine has loaded and enabled; the check holds with at least ``min_enabled``;
- capabilities: each named part must be on (:data:`CAPABILITIES` says how each is judged);
- alerts: alerts of the given types last seen in the window, counted; required only when the
  map sets ``min`` (otherwise the count is information).

A control is ``covered`` when it has checks and all hold, ``evidence`` when they do not but
people uploaded evidence for it, ``gap`` otherwise; each status comes with its reasons.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from agentwatch.compliance.library import CAPABILITY_NAMES, Control, Framework, library
from agentwatch.detect.engine import RuleInfo
from agentwatch.intel.schema import intel_iocs
from agentwatch.soc.honeytokens.schema import honeytokens
from agentwatch.store.alerts_schema import alerts

DAY = 86_400
MAX_LISTED = 50  # rule ids named in one answer


@dataclass
class Context:
    """What one assessment reads once: settings, the engine's rules, store counts."""

    settings: Any
    engine: Engine
    rules: dict[str, RuleInfo] | None  # None: no detection engine runs here
    window_days: int | None = None  # overrides every control's alert window
    now: float = field(default_factory=time.time)
    _counts: dict[Any, int] = field(default_factory=dict)
    _by_tag: dict[str, list[str]] | None = None

    def tagged(self, tag: str) -> list[str]:
        """Ids of the rules carrying ``tag`` or a tag below it (``a.b`` covers ``a.b.c``). The
        index, of the tags the library maps only, is built once per assessment."""
        if self._by_tag is None:
            wanted = mapped_tags()
            index: dict[str, list[str]] = {}
            for info in (self.rules or {}).values():
                for head in {h for t in info.tags for h in _heads(t) if h in wanted}:
                    index.setdefault(head, []).append(info.id)
            self._by_tag = index
        return self._by_tag.get(tag, [])

    def count(self, key: Any, stmt: Any) -> int:
        if key not in self._counts:
            with self.engine.connect() as conn:
                self._counts[key] = int(conn.execute(stmt).scalar_one())
        return self._counts[key]

    def alerts(self, types: tuple[str, ...], days: int) -> int:
        stmt = select(func.count()).where(alerts.c.type.in_(types), alerts.c.last_seen >= self.now - days * DAY)
        return self.count(("alerts", types, days), stmt)


def _heads(tag: str) -> list[str]:
    """The tag and every tag above it: ``a.b.c`` -> [a.b.c, a.b, a]."""
    out = [tag]
    while (cut := tag.rfind(".")) > 0:
        tag = tag[:cut]
        out.append(tag)
    return out


@functools.cache
def mapped_tags() -> frozenset[str]:
    return frozenset(
        t
        for f in library().frameworks
        for c in f.controls
        if c.automatic and c.automatic.rules
        for t in c.automatic.rules.tags
    )


def _honeytokens(ctx: Context) -> tuple[bool, str]:
    if not ctx.settings.honeytokens.enabled:
        return False, "honeytokens.enabled is false"
    live = ctx.count("honeytokens", select(func.count()).where(honeytokens.c.status == "active"))
    return live > 0, f"{live} active honeytoken(s)"


def _intel(ctx: Context) -> tuple[bool, str]:
    if not ctx.settings.intel.enabled:
        return False, "intel.enabled is false"
    held = ctx.count("intel", select(func.count()).select_from(intel_iocs))
    return held > 0, f"{held} indicator(s) of compromise loaded"


def _flag(read: Callable[[Any], bool], name: str) -> Callable[[Context], tuple[bool, str]]:
    return lambda ctx: (bool(read(ctx.settings)), f"{name} is {str(bool(read(ctx.settings))).lower()}")


def _guard(ctx: Context) -> tuple[bool, str]:
    mode = ctx.settings.capture.guard.mode
    return mode != "off", f"capture.guard.mode is {mode}"


def _masking(ctx: Context) -> tuple[bool, str]:
    redaction = ctx.settings.capture.redaction
    return redaction != "full", f"capture.redaction is {redaction}"


def _allowlist(ctx: Context) -> tuple[bool, str]:
    s = ctx.settings
    listed = (
        len(s.detection.approved_models) + len(s.detection.approved_providers) + len(s.capture.guard.approved_models)
    )
    return listed > 0, f"{listed} approved model(s) or provider(s) configured"


def _outputs(ctx: Context) -> tuple[bool, str]:
    n = len(ctx.settings.detection.outputs)
    return n > 0, f"{n} alert output(s) configured"


CAPABILITIES: dict[str, Callable[[Context], tuple[bool, str]]] = {
    "auth": _flag(lambda s: s.auth.enabled, "auth.enabled"),
    "audit_log": _flag(lambda s: s.auth.audit.requests, "auth.audit.requests"),
    "rate_limits": _flag(lambda s: s.auth.enabled and s.auth.rate_limit.enabled, "auth.rate_limit (with auth)"),
    "gateway_guard": _guard,
    "secret_masking": _masking,
    "honeytokens": _honeytokens,
    "intel": _intel,
    "detection": _flag(lambda s: s.detection.enabled, "detection.enabled"),
    "ueba": _flag(lambda s: s.ueba.enabled, "ueba.enabled"),
    "model_allowlist": _allowlist,
    "alert_outputs": _outputs,
}
assert set(CAPABILITIES) == set(CAPABILITY_NAMES)


def _rules(ctx: Context, rmap: Any) -> tuple[bool, str, dict[str, Any]]:
    if ctx.rules is None:
        return False, "rules: the detection engine is not running", {"enabled": 0, "mapped": 0}
    mapped = {i: ctx.rules.get(i) for i in rmap.ids}
    if rmap.tags:
        mapped.update((rid, ctx.rules[rid]) for tag in rmap.tags for rid in ctx.tagged(tag))
    enabled = sorted(i for i, r in mapped.items() if r is not None and r.enabled)
    disabled = sorted(i for i, r in mapped.items() if r is not None and not r.enabled)
    missing = sorted(i for i, r in mapped.items() if r is None)
    holds = len(enabled) >= rmap.min_enabled
    reason = (
        f"rules: {len(enabled)} of {len(mapped)} mapped rule(s) loaded and enabled (at least {rmap.min_enabled} needed)"
    )
    detail = {
        "ids": list(rmap.ids),
        "tags": list(rmap.tags),
        "min_enabled": rmap.min_enabled,
        "mapped": len(mapped),
        "enabled": len(enabled),
        "disabled_ids": disabled[:MAX_LISTED],
        "not_loaded_ids": missing[:MAX_LISTED],
        "enabled_ids": enabled[:MAX_LISTED],
    }
    return holds, reason, detail


def automatic(ctx: Context, control: Control) -> dict[str, Any] | None:
    """The control's automatic evidence: ``holds`` and the checks with their reasons."""
    amap = control.automatic
    if amap is None:
        return None
    checks: list[tuple[bool, str]] = []
    out: dict[str, Any] = {}
    if amap.rules is not None:
        holds, reason, out["rules"] = _rules(ctx, amap.rules)
        checks.append((holds, reason))
    caps = []
    for name in amap.capabilities:
        on, why = CAPABILITIES[name](ctx)
        caps.append({"name": name, "on": on, "reason": why})
        checks.append((on, f"capability {name}: {'on' if on else 'off'} ({why})"))
    out["capabilities"] = caps
    if amap.alerts is not None:
        days = ctx.window_days or amap.alerts.window_days
        n = ctx.alerts(amap.alerts.types, days)
        out["alerts"] = {"types": list(amap.alerts.types), "window_days": days, "count": n, "min": amap.alerts.min}
        reason = f"alerts: {n} of type {'/'.join(amap.alerts.types)} in the last {days} day(s)"
        if amap.alerts.min > 0:
            checks.append((n >= amap.alerts.min, f"{reason} (at least {amap.alerts.min} needed)"))
        else:
            checks.append((True, reason))
    out["holds"] = all(ok for ok, _ in checks)
    out["reasons"] = [why for _, why in checks]
    return out


def assess(ctx: Context, control: Control, uploaded: int) -> dict[str, Any]:
    """One control on the dashboard: status, reasons, automatic evidence, uploads counted."""
    auto = automatic(ctx, control)
    reasons = list(auto["reasons"]) if auto else ["no automatic evidence maps to this control"]
    if auto is not None and auto["holds"]:
        status = "covered"
    elif uploaded:
        status = "evidence"
        reasons.append(f"{uploaded} uploaded evidence item(s)")
    else:
        status = "gap"
        reasons.append("no uploaded evidence")
    return {
        "id": control.id,
        "title": control.title,
        "status": status,
        "reasons": reasons,
        "automatic": auto,
        "uploaded_evidence": uploaded,
    }


def dashboard(ctx: Context, framework: Framework, uploaded: dict[str, int]) -> dict[str, Any]:
    rows = [assess(ctx, c, uploaded.get(c.id, 0)) for c in framework.controls]
    totals = {s: sum(1 for r in rows if r["status"] == s) for s in ("covered", "evidence", "gap")}
    n = len(rows)
    return {
        "framework": framework.summary(),
        "totals": {"controls": n, **totals, "percent_addressed": round(100 * (n - totals["gap"]) / n, 1)},
        "controls": rows,
    }
