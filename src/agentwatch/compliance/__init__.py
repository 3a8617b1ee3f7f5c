"""Compliance: a control library for AI-agent frameworks, evidence for each control (computed
from what agentwatch runs, or uploaded by people) and a per-framework dashboard."""
