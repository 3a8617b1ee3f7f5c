"""Honeytokens: canary secrets and URLs planted where an AI agent may read them."""
