"""Entities across events: the index of every entity named by a stored event, and the queries
behind ``/api/v1/entities`` (search, timeline, risk history)."""
