"""The inline guard: per-route policy over what an agent sends through the gateway.

Verdicts come from two places, merged:

- the guard's own checks: secrets in the request (``capture.redact`` patterns) and models
  outside ``capture.guard.approved_models``;
- the detection engine, when one is running (``aw.components["detection"].evaluate(event)``,
  stateless), e.g. prompt-injection rules.

Modes: ``off`` (record only), ``monitor`` (record and alert), ``enforce`` (also act: block
with a provider-shaped error, or with ``enforce_action = "redact"`` mask secrets before the
request is forwarded; other findings at or above ``block_severity`` still block).

The guard fails closed: a request body it could not read whole (nested too deep, not JSON it
can parse, content-encoded) is an ``uninspectable_request`` finding of a secret's severity, so
it is blocked whenever a secret would be, and never forwarded "redacted" with a part unread.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import structlog

from agentwatch.capture.redact import KINDS, Report
from agentwatch.capture.settings import GuardSettings
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

log = structlog.get_logger("agentwatch.capture.guard")

DETECTOR = "capture.guard"
SECRET_SEVERITY = 8
UNAPPROVED_MODEL_SEVERITY = 7
PII_SEVERITY = 3
UNINSPECTABLE_RULE = "guard.uninspectable_request"


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    action: str = "allow"  # allow | block | redact

    @property
    def reasons(self) -> list[str]:
        return [f.rule_id for f in self.findings]

    def summary(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rules": self.reasons[:20],
            "severity": max((f.severity for f in self.findings), default=0),
        }

    def refusal(self) -> str:
        """What a blocked agent is told: the rules, and why its body was not read when that is the cause
        (the one reason the agent can act on without the guard quoting its request back)."""
        text = f"agentwatch guard blocked this request: {', '.join(self.reasons)}"
        unread = next((f for f in self.findings if f.rule_id == UNINSPECTABLE_RULE), None)
        if unread is not None:
            text += f" ({unread.details['reason']})"
        return text


def model_approved(model: str | None, approved: list[str]) -> bool:
    if not approved:
        return True
    if not model:
        return False
    m = model.removeprefix("models/")
    return any(fnmatch.fnmatchcase(m, pat) for pat in approved)


class Guard:
    def __init__(self, settings: GuardSettings, engine: Any = None) -> None:
        self.settings = settings
        self.engine = engine  # the detection engine component, when present

    def mode_for(self, route_mode: str | None) -> str:
        return route_mode or self.settings.mode

    def own_findings(self, event: Event, report: Report, model: str | None) -> list[Finding]:
        out: list[Finding] = []
        secrets = [t for t in report.counts if KINDS.get(t) == "secret"]
        if secrets:
            out.append(
                Finding(
                    detector=DETECTOR,
                    rule_id="guard.secret_in_prompt",
                    title="Secret sent to an LLM provider",
                    severity=SECRET_SEVERITY,
                    events=[event],
                    alert_type="guard",
                    message=f"request carries {', '.join(sorted(secrets))}",
                    tags=["attack.credential_access", "attack.t1552", "llm.data_leak"],
                    details={"types": sorted(secrets)},
                )
            )
        if report.uninspected:
            out.append(
                Finding(
                    detector=DETECTOR,
                    rule_id=UNINSPECTABLE_RULE,
                    title="LLM request the guard could not inspect",
                    severity=SECRET_SEVERITY,  # it may hold one: it is treated as if it did
                    events=[event],
                    alert_type="guard",
                    message=f"request body not inspected: {report.uninspected}",
                    tags=["llm.data_leak", "guard"],
                    details={"reason": report.uninspected},
                )
            )
        pii = [t for t in report.counts if KINDS.get(t) == "pii"]
        if pii:
            out.append(
                Finding(
                    detector=DETECTOR,
                    rule_id="guard.pii_in_prompt",
                    title="Personal data sent to an LLM provider",
                    severity=PII_SEVERITY,
                    events=[event],
                    alert_type="guard",
                    message=f"request carries {', '.join(sorted(pii))}",
                    tags=["llm.data_leak", "privacy"],
                    details={"types": sorted(pii)},
                )
            )
        if not model_approved(model, self.settings.approved_models):
            out.append(
                Finding(
                    detector=DETECTOR,
                    rule_id="guard.unapproved_model",
                    title="Request to an unapproved model",
                    severity=UNAPPROVED_MODEL_SEVERITY,
                    events=[event],
                    alert_type="guard",
                    message=f"model {model!r} is not in capture.guard.approved_models",
                    tags=["policy"],
                    details={"model": model},
                )
            )
        return out

    def engine_findings(self, event: Event) -> list[Finding]:
        if self.engine is None or not hasattr(self.engine, "evaluate"):
            return []
        try:
            return list(self.engine.evaluate(event))
        except Exception:  # the guard never breaks traffic because a rule failed
            log.exception("guard.engine_failed")
            return []

    def decide(self, mode: str, event: Event, report: Report, model: str | None) -> Verdict:
        findings = self.own_findings(event, report, model)
        if mode == "enforce":
            findings += self.engine_findings(event)
        verdict = Verdict(findings)
        if mode != "enforce":
            return verdict
        blocking = [f for f in findings if f.severity >= self.settings.block_severity]
        if not blocking:
            return verdict
        verdict.action = "block"  # the gateway may turn it into "redact" (see Gateway._inline_verdict)
        return verdict

    @staticmethod
    def block_finding(event: Event, verdict: Verdict, route: str) -> Finding:
        top = max(verdict.findings, key=lambda f: f.severity)
        return Finding(
            detector=DETECTOR,
            rule_id="guard.blocked",
            title="Gateway blocked an LLM request",
            severity=max(f.severity for f in verdict.findings),
            events=[event],
            alert_type="guard",
            message=f"route {route}: blocked ({', '.join(verdict.reasons)}): {top.message}"[:1000],
            tags=["guard", "blocked"],
            details={"route": route, "rules": verdict.reasons},
        )
