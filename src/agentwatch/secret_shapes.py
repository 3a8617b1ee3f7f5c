"""The shapes of provider keys and tokens, shared by everything that looks for secrets in text:
redaction of captured events and forwarded requests (``capture.redact``) and log lines
(``masking``).

Each entry is ``(type, triggers, pattern)``: a text can only hold the pattern when it holds one
of the triggers (lower case), so a caller that scans much ordinary text checks those first.
"""

from __future__ import annotations

TOKEN_SHAPES: list[tuple[str, tuple[str, ...], str]] = [
    ("anthropic_api_key", ("sk-ant-",), r"\bsk-ant-[A-Za-z0-9_\-]{20,200}"),
    ("openai_api_key", ("sk-",), r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200}"),
    ("aws_access_key_id", ("akia", "asia"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github_token", ("gh", "github_pat_"), r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ("google_api_key", ("aiza",), r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("slack_token", ("xox",), r"\bxox[abposr]-[A-Za-z0-9\-]{10,200}"),
    ("stripe_key", ("k_live_",), r"\b[sr]k_live_[0-9A-Za-z]{20,200}"),
    ("groq_api_key", ("gsk_",), r"\bgsk_[A-Za-z0-9]{20,200}"),
    ("huggingface_token", ("hf_",), r"\bhf_[A-Za-z0-9]{30,200}"),
    ("jwt", ("eyj",), r"\beyJ[A-Za-z0-9_\-]{10,4096}\.eyJ[A-Za-z0-9_\-]{10,8192}\.[A-Za-z0-9_\-]{10,4096}"),
]
