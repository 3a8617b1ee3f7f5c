"""Threat intelligence: indicators of compromise, matched against every stored event."""
