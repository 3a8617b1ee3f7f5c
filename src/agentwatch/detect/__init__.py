"""Detection: one engine for Sigma, ATR and built-in stateful rules."""
