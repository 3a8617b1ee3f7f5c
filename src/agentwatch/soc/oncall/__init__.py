"""On-call rotations: who answers the alerts, shift by shift, and who stands in for whom."""
