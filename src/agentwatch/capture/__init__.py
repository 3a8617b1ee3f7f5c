"""Capture: the LLM gateway, the host sensor and OTLP ingest."""
