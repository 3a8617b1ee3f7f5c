"""Service-level targets for alerts: how long each severity band may stay unacknowledged and
unresolved, and the breaches of those targets."""
