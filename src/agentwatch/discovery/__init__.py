"""Agent discovery: scanner, probes, scoring, inventory."""
