"""Outbound network helpers shared by capabilities (SSRF guard)."""
