"""Every permission a route can require. Roles and API-key scopes are sets of these.

``admin`` implies every other permission.
"""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    "events:read": "read events, processes, traces, stats and live event streams",
    "events:write": "send events (ingest, AOP, OTLP, sensor batches)",
    "sessions:read": "read agent sessions and their exports",
    "sessions:write": "delete agent sessions",
    "alerts:read": "read alerts and their feedback",
    "alerts:write": "change alerts, give feedback, route alert outputs",
    "rules:read": "read detection rules",
    "rules:write": "upload, enable and disable detection rules",
    "rules:approve": "approve or reject detection proposals and promote them into the live rule set",
    "scans:read": "read scan results, history and the agent inventory",
    "scans:run": "start and stop network scans",
    "settings:read": "read settings and running configuration",
    "settings:write": "change settings (scanner alerts, outputs, filters)",
    "filters:write": "change the runtime process filters",
    "gateway:use": "send LLM traffic through the gateway",
    "cases:write": "create and change cases",
    "intel:write": "add and remove threat-intelligence indicators",
    "playbooks:write": "create, change and delete response playbooks",
    "playbooks:run": "run response playbooks and simulate their actions (dry runs)",
    "honeytokens:write": "create and revoke honeytokens (canary secrets and URLs)",
    "purple:run": "run atomic tests, take coverage snapshots and write tabletop sessions (purple team)",
    "oncall:write": "create, change and delete on-call rotations",
    "approvals:request": "ask for an approval (four-eyes) of a response action, an access grant or a change",
    "approvals:decide": "approve or reject other people's approval requests (which may run a held playbook)",
    "compliance:write": "upload evidence for compliance controls",
    "metrics:read": "read Prometheus metrics",
    "audit:read": "read and verify the audit log",
    "users:admin": "manage users, roles and other users' API keys",
    "account": "see your own profile and manage your own API keys",
    "admin": "everything",
}
