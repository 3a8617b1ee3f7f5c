"""Purple team: atomic tests of agentwatch's own detections, ATT&CK coverage by verdict, drift, tabletops."""
