"""The optional LLM summary of a context's suggestions (``?summary=true`` with ``[llm]`` on).

The model sees only the suggestions' kinds and reasons, masked (:func:`agentwatch.masking.mask_text`)
and bounded; the call goes through the one backend client (:func:`agentwatch.alerts.explain.complete`:
SSRF guard, time-out, bounded answer). A failure leaves the summary out and says why: the
suggestions never wait on a model. A summary made from the same input is reused from the
cache (:mod:`.summary_cache`) instead of asking the model again, and requests for the same input
arriving together share one call (its summary, or its failure).
"""

from __future__ import annotations

from typing import Any

from agentwatch.alerts.explain import ExplainError, complete
from agentwatch.masking import mask_text
from agentwatch.soc.copilot.suggestion import Suggestion
from agentwatch.soc.copilot.summary_cache import Crowded, SummaryCache, input_hash

MAX_REASONS = 30
MAX_REASON_CHARS = 400
MAX_SUMMARY_CHARS = 2000

SYSTEM = (
    "You help a security analyst. Summarise, in at most three sentences of plain English, what the "
    "listed findings about one SOC resource mean and what to do first. Use only the facts given."
)


def messages(resource_type: str, resource_id: str, suggestions: list[Suggestion]) -> list[dict[str, str]]:
    lines = [f"- {s.kind}: {mask_text(s.reason)[:MAX_REASON_CHARS]}" for s in suggestions[:MAX_REASONS]] or [
        "- (no findings)"
    ]
    user = f"Resource: {resource_type} {mask_text(resource_id)}\nFindings:\n" + "\n".join(lines)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


async def summarise(
    llm: Any, resource_type: str, resource_id: str, suggestions: list[Suggestion], cache: SummaryCache
) -> tuple[dict[str, Any] | None, str | None]:
    """(``{"text", "model"}``, None), or (None, why there is none)."""
    if not llm.enabled or not llm.base_url or not llm.model:
        return None, "llm: disabled (set llm.enabled, llm.base_url and llm.model)"
    prompt = messages(resource_type, resource_id, suggestions)
    subject, made_from = f"{resource_type}/{resource_id}", input_hash(prompt, llm)

    async def ask() -> dict[str, Any]:
        text, model = await complete(llm, prompt)
        return {"text": text[:MAX_SUMMARY_CHARS], "model": model}

    try:
        return await cache.made(subject, made_from, ask), None
    except (ExplainError, Crowded) as exc:
        return None, str(exc)
