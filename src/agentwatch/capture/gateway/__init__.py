"""The LLM gateway: a recording, guarding reverse proxy in front of LLM provider APIs."""
