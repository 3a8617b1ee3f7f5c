"""The ingest pipeline: stages, micro-batched commit, publish to the live hub."""
