"""Provider and API-key identification, from the OISP bundle (hosts, globs, key prefixes).

Only a key's known prefix (``sk-proj-``, ``sk-ant-``...) and a short hash are ever kept:
enough to tell keys apart and correlate them, useless to call a provider with.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from agentwatch.capture.cost import load_bundle

# Prefixes the bundle does not list, most specific first.
EXTRA_PREFIXES: tuple[tuple[str, str], ...] = (
    ("sk-ant-oat", "anthropic"),
    ("sk-ant-api", "anthropic"),
    ("sk-ant-", "anthropic"),
    ("sk-or-", "openrouter"),
    ("sk-proj-", "openai"),
    ("sk-svcacct-", "openai"),
    ("sk-admin-", "openai"),
    ("gsk_", "groq"),
    ("hf_", "huggingface"),
    ("AIza", "google"),
    ("xai-", "xai"),
    ("pplx-", "perplexity"),
    ("r8_", "replicate"),
    ("fw_", "fireworks"),
    ("sk-", "openai"),
)


@dataclass(frozen=True)
class ProviderIndex:
    domains: dict[str, str]
    patterns: list[tuple[re.Pattern[str], str]]
    prefixes: list[tuple[str, str]]

    def by_host(self, host: str, port: int | None = None) -> str | None:
        host = host.lower().rstrip(".")
        if port is not None and f"{host}:{port}" in self.domains:
            return self.domains[f"{host}:{port}"]
        if host in self.domains:
            return self.domains[host]
        for rx, provider in self.patterns:
            if rx.match(host):
                return provider
        return None

    def by_url(self, url: str) -> str | None:
        try:
            parts = urlsplit(url)
            return self.by_host(parts.hostname or "", parts.port)
        except ValueError:
            return None

    def by_key(self, key: str) -> str | None:
        for prefix, provider in self.prefixes:
            if key.startswith(prefix):
                return provider
        return None

    def key_prefix(self, key: str) -> str:
        for prefix, _ in self.prefixes:
            if key.startswith(prefix):
                return prefix
        return key[:3] if len(key) >= 16 else ""


@lru_cache(maxsize=4)
def provider_index(data_dir: str | None = None) -> ProviderIndex:
    bundle = load_bundle(data_dir)
    domains = {k.lower(): v for k, v in bundle.get("domain_index", {}).items() if isinstance(v, str)}
    patterns: list[tuple[re.Pattern[str], str]] = []
    for p in bundle.get("domain_patterns", []):
        if isinstance(p, dict) and isinstance(p.get("pattern"), str) and isinstance(p.get("provider"), str):
            # build the regex from the glob ourselves: '*' is one or more DNS labels
            rx = "^" + re.escape(p["pattern"].lower()).replace(r"\*", r"[a-z0-9.\-]{1,200}") + "$"
            patterns.append((re.compile(rx), p["provider"]))
    prefixes: dict[str, str] = dict(EXTRA_PREFIXES)
    for pid, prov in bundle.get("providers", {}).items():
        auth = prov.get("auth") if isinstance(prov, dict) else None
        for prefix in (auth or {}).get("key_prefixes") or []:
            if isinstance(prefix, str) and len(prefix) >= 3:
                prefixes.setdefault(prefix, pid)
    ordered = sorted(prefixes.items(), key=lambda kv: len(kv[0]), reverse=True)
    return ProviderIndex(domains, patterns, ordered)


def key_facts(key: str | None, index: ProviderIndex) -> dict[str, Any] | None:
    """The ``auth`` object of an ai.request: type, known prefix and a truncated hash, never the key."""
    if not key:
        return None
    auth: dict[str, Any] = {"type": "oauth" if key.startswith("sk-ant-oat") else "api_key"}
    prefix = index.key_prefix(key)[:8]  # OISP allows 8 characters: "sk-ant-a", "sk-proj-"
    if prefix:
        auth["key_prefix"] = prefix
    auth["key_hash"] = "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]
    return auth


OISP_PROVIDERS = frozenset(
    {
        "openai",
        "anthropic",
        "google",
        "azure_openai",
        "aws_bedrock",
        "cohere",
        "mistral",
        "groq",
        "together",
        "fireworks",
        "replicate",
        "huggingface",
        "ollama",
        "lmstudio",
        "vllm",
        "other",
    }
)
PROVIDER_ALIASES = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google_genai": "google",
    "aws.bedrock": "aws_bedrock",
    "bedrock": "aws_bedrock",
    "azure.ai.openai": "azure_openai",
    "az.ai.openai": "azure_openai",
    "azure": "azure_openai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "together_ai": "together",
    "togetherai": "together",
    "hf": "huggingface",
}


def oisp_provider(name: str | None) -> str:
    """A provider name as OISP's enumeration has it; anything it does not list is ``other``."""
    n = (name or "").strip().lower()
    n = PROVIDER_ALIASES.get(n, n)
    return n if n in OISP_PROVIDERS else "other"
