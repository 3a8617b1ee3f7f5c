"""Agent sessions: the AOP collector, session derivation and session rules."""
