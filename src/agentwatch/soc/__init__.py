"""Security operations: identity and access, audit, cases, playbooks, intel, honeytokens."""
