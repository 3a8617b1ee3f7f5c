"""An LLM request or response using a provider or model that is not on the approved list."""

from __future__ import annotations

import fnmatch

from agentwatch.detect.builtin.base import BuiltinRule
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding


class UnapprovedModel(BuiltinRule):
    id = "AW-BUILTIN-UNAPPROVED-MODEL"
    title = "LLM provider or model not on the approved list"
    severity = 5
    tags = ["atlas.aml.t0040", "attack.t1567", "attack.exfiltration"]
    description = (
        "An agent sent a request to an LLM provider or model that is not listed in "
        "detection.approved_providers / detection.approved_models (shadow AI)."
    )
    stateful = False

    def __init__(self, providers: list[str], models: list[str]) -> None:
        self.providers = {p.lower() for p in providers}
        self.models = [m.lower() for m in models]

    @property
    def configured(self) -> bool:
        return bool(self.providers or self.models)

    def check(self, event: Event) -> list[Finding]:
        if not self.configured or event.event_type not in ("ai.request", "ai.embedding"):
            return []
        data = event.data
        provider = data.get("provider") if isinstance(data.get("provider"), dict) else {}
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        name = str(provider.get("name") or "").lower()
        model_id = str(model.get("id") or "").lower()
        problems = []
        if self.providers and name and name not in self.providers:
            problems.append(f"provider {name!r} is not approved")
        if self.models and model_id and not any(fnmatch.fnmatchcase(model_id, m) for m in self.models):
            problems.append(f"model {model_id!r} is not approved")
        if not problems:
            return []
        return [
            self.finding(
                [event],
                "; ".join(problems),
                dedup_key=f"{name}|{model_id}",
                provider=name,
                model=model_id,
            )
        ]
