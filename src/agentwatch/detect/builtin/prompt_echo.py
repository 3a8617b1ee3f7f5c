"""System-prompt leakage, stateful: a response repeats a verbatim stretch of its request's system prompt.

The pack rule AW-LEAK-001 catches answers that *say* they are revealing their
instructions; this one catches the leak itself, whatever the wording, by
remembering each request's system prompt (by request id and conversation id)
and looking for a long verbatim piece of it in the matching response.
"""

from __future__ import annotations

from agentwatch.detect.atr.views import text_of
from agentwatch.detect.builtin.base import BuiltinRule, Lru, slim
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

MIN_PROMPT = 80  # characters: shorter system prompts are too generic to call a repeat a leak
PIECE = 60  # a verbatim stretch this long is not a coincidence
STEP = 20
# Seeds of SEED characters every STEP characters of the prompt: every common stretch of PIECE
# characters contains a whole seed (SEED + STEP - 1 <= PIECE), which is then extended both ways.
SEED = PIECE - STEP + 1
MAX_SEED_HITS = 32  # occurrences of one seed followed in an answer (repetitive text stays cheap)
MAX_PROMPT = 4096  # characters of a system prompt remembered
MAX_PROMPTS = 5000  # requests remembered (bounded memory: at most ~20 MB of prompt text)


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def _messages_text(messages: object, role: str | None) -> str:
    if not isinstance(messages, list):
        return ""
    parts = []
    for m in messages:
        if isinstance(m, dict) and (role is None or m.get("role") == role):
            parts.append(text_of(m.get("content")))
    return "\n".join(parts)


class SystemPromptEcho(BuiltinRule):
    id = "AW-BUILTIN-PROMPT-ECHO"
    title = "Model response repeats its system prompt"
    severity = 6
    tags = ["atlas.aml.t0056", "atlas.aml.t0057", "attack.collection"]
    description = (
        f"A model response contains a verbatim stretch ({PIECE}+ characters) of the system prompt "
        "sent in the matching request (same request id or conversation id)."
    )

    def __init__(self, cap: int) -> None:
        self.prompts: Lru[tuple[str, Event]] = Lru(min(cap, MAX_PROMPTS))

    def state_size(self) -> int:
        return len(self.prompts)

    def observe(self, event: Event) -> list[Finding]:
        data = event.data
        keys = [f"{k}:{data[k]}" for k in ("request_id", "conversation_id") if isinstance(data.get(k), str)]
        if not keys:
            return []
        if event.event_type == "ai.request":
            system = _squash(_messages_text(data.get("messages"), "system"))[:MAX_PROMPT]
            if len(system) >= MIN_PROMPT:
                remembered = (system, slim(event))
                for key in keys:
                    self.prompts.put(key, remembered)
            return []
        if event.event_type != "ai.response":
            return []
        remembered = next((p for p in (self.prompts.get(k) for k in keys) if p is not None), None)
        if remembered is None:
            return []
        system, request = remembered
        answer = _squash(
            "\n".join(
                _messages_text([c.get("message")], None)
                for c in data.get("choices") or []
                if isinstance(c, dict) and isinstance(c.get("message"), dict)
            )
        )
        if len(answer) < PIECE:
            return []
        start = _common_stretch(system, answer)
        if start is None:
            return []
        return [
            self.finding(
                [request, event],
                f"the response repeats {PIECE}+ characters of its system prompt verbatim",
                dedup_key=keys[0],
                excerpt_offset=start,
            )
        ]


def _common_stretch(system: str, answer: str) -> int | None:
    """Offset in ``system`` of a stretch of PIECE+ characters that ``answer`` repeats, or None."""
    for start in range(0, len(system) - SEED + 1, STEP):
        seed = system[start : start + SEED]
        at = answer.find(seed)
        hits = 0
        while at != -1 and hits < MAX_SEED_HITS:
            hits += 1
            left = 0
            while left < start and left < at and system[start - left - 1] == answer[at - left - 1]:
                left += 1
            right = 0
            while (
                start + SEED + right < len(system)
                and at + SEED + right < len(answer)
                and system[start + SEED + right] == answer[at + SEED + right]
            ):
                right += 1
            if left + SEED + right >= PIECE:
                return start - left
            at = answer.find(seed, at + 1)
    return None
