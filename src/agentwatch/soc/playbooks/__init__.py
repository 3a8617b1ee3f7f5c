"""Response playbooks: ordered actions run on an alert, by hand or when a new alert matches."""
