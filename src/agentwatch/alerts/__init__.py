"""Alerts: one model for every finding, whatever produced it."""
