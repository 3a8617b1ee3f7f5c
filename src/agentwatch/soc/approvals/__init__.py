"""Approval requests (four-eyes): an action that waits for a second person's yes or no."""
