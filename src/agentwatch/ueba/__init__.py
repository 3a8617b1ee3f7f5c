"""UEBA: per-entity behaviour baselines learnt from event time, and the anomalies scored against them."""
