"""agentwatch: self-hosted security and observability for AI agents."""

__version__ = "0.1.0"
