"""One module per provider wire format; :func:`get` maps a route's provider kind to it."""

from __future__ import annotations

from agentwatch.capture.gateway.providers.anthropic import AnthropicProvider
from agentwatch.capture.gateway.providers.base import Provider
from agentwatch.capture.gateway.providers.gemini import GeminiProvider
from agentwatch.capture.gateway.providers.ollama import OllamaProvider
from agentwatch.capture.gateway.providers.openai import OpenAIProvider

_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "openai_compatible": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "ollama": OllamaProvider,
}


def get(kind: str, name: str) -> Provider:
    """The provider for a route; ``name`` is the OISP provider name recorded in events."""
    return _KINDS[kind](name)


__all__ = ["Provider", "get"]
