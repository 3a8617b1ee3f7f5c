"""The four built-in alert outputs: signed webhook, Slack, Microsoft Teams, PagerDuty Events v2."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentwatch.notify.base import HttpOutput, NotifyError, check_fields, common, get_headers, get_str

MAX_LISTED = 20  # alerts itemised in one chat message; the rest are counted
SIGNATURE_HEADER = "X-Agentwatch-Signature"
TIMESTAMP_HEADER = "X-Agentwatch-Timestamp"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


def _short(text: Any, limit: int) -> str:
    s = str(text or "")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``timestamp + "." + body``).

    Signing the timestamp with the body lets a receiver refuse replays of old deliveries."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class WebhookOutput(HttpOutput):
    """JSON ``{"source", "sent_at", "alerts": [...]}``, signed when a secret is set."""

    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], *, allow_private: bool = False) -> WebhookOutput:
        check_fields(spec, frozenset({"secret", "headers"}))
        secret = get_str(spec, "secret", max_len=512)
        return cls(**common(spec, "webhook", allow_private=allow_private), headers=get_headers(spec), secret=secret)

    async def send(self, alerts: list[dict]) -> None:
        ts = str(int(time.time()))
        body = orjson.dumps({"source": "agentwatch", "sent_at": ts, "alerts": alerts})
        headers = {TIMESTAMP_HEADER: ts}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
        await self.post(body, headers)


SLACK_TEXT_LIMIT = 3000  # characters of one mrkdwn text object; Slack refuses the whole message beyond


def _mrkdwn(text: Any, limit: int = SLACK_TEXT_LIMIT) -> str:
    """Slack escapes only these three; user text must not open links or mentions.

    At most ``limit`` characters after escaping (an escape is up to five times its character),
    never cut inside an entity."""
    escaped = str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&", len(cut) - 4)
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


@dataclass
class SlackOutput(HttpOutput):
    """A Slack incoming-webhook message: a summary line plus one section per alert."""

    @classmethod
    def from_spec(cls, spec: dict[str, Any], *, allow_private: bool = False) -> SlackOutput:
        check_fields(spec, frozenset())
        return cls(**common(spec, "slack", allow_private=allow_private))

    @staticmethod
    def body(alerts: list[dict]) -> dict[str, Any]:
        summary = f"agentwatch: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
        blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": summary}}]
        for a in alerts[:MAX_LISTED]:
            label = _mrkdwn(str(a.get("severity_label", "")).upper(), 20)
            title = _mrkdwn(_short(a.get("title"), 200), 600)
            text = f"*[{label}] {title}*\n{_mrkdwn(_short(a.get('message'), 1500), 2000)}"
            # verbatim: Slack must not auto-parse "@channel", "@here", "#channel" or bare URLs in
            # alert text (which quotes what agents sent); our own escaping already stops "<...>"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}})
        if len(alerts) > MAX_LISTED:
            more = f"... and {len(alerts) - MAX_LISTED} more"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
        return {"text": summary, "blocks": blocks}

    async def send(self, alerts: list[dict]) -> None:
        await self.post(self.body(alerts))


@dataclass
class TeamsOutput(HttpOutput):
    """A Microsoft Teams (Workflows webhook) message carrying one Adaptive Card."""

    @classmethod
    def from_spec(cls, spec: dict[str, Any], *, allow_private: bool = False) -> TeamsOutput:
        check_fields(spec, frozenset())
        return cls(**common(spec, "teams", allow_private=allow_private))

    @staticmethod
    def body(alerts: list[dict]) -> dict[str, Any]:
        items: list[dict[str, Any]] = [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": f"agentwatch: {len(alerts)} alert(s)"}
        ]
        for a in alerts[:MAX_LISTED]:
            label = str(a.get("severity_label", "")).upper()
            # alert text quotes what agents sent: a TextRun is never read as Markdown, so it cannot
            # carry links ([text](url)) or formatting into the card the way a TextBlock would
            title = {"type": "TextRun", "weight": "Bolder", "text": f"[{label}] {_short(a.get('title'), 200)}"}
            items.append({"type": "RichTextBlock", "inlines": [title]})
            message = {"type": "TextRun", "text": _short(a.get("message"), 1500)}
            items.append({"type": "RichTextBlock", "inlines": [message]})
        if len(alerts) > MAX_LISTED:
            items.append({"type": "TextBlock", "text": f"... and {len(alerts) - MAX_LISTED} more"})
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": items,
        }
        return {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        }

    async def send(self, alerts: list[dict]) -> None:
        await self.post(self.body(alerts))


def pagerduty_severity(severity: int) -> str:
    if severity >= 9:
        return "critical"
    if severity >= 7:
        return "error"
    if severity >= 4:
        return "warning"
    return "info"


@dataclass
class PagerDutyOutput(HttpOutput):
    """One PagerDuty Events API v2 ``trigger`` per alert, deduplicated by the alert id."""

    routing_key: str = field(default="", repr=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], *, allow_private: bool = False) -> PagerDutyOutput:
        check_fields(spec, frozenset({"routing_key"}))
        key = get_str(spec, "routing_key", required=True, max_len=128)
        return cls(
            **common(spec, "pagerduty", allow_private=allow_private, default_url=PAGERDUTY_URL), routing_key=key or ""
        )

    def event(self, alert: dict) -> dict[str, Any]:
        # The Events API refuses an empty summary and typed fields sent as null: an alert without
        # a title is summarised by its message or rule, and absent facts are left out.
        summary = next((str(alert[k]) for k in ("title", "message", "rule_id") if alert.get(k)), "agentwatch alert")
        payload = {
            "summary": _short(summary, 1024),
            "source": "agentwatch",
            "severity": pagerduty_severity(int(alert.get("severity", 0) or 0)),
            "timestamp": alert.get("last_seen") or alert.get("created_at"),
            "component": alert.get("detector"),
            "class": alert.get("type"),
            "custom_details": {
                "message": _short(alert.get("message"), 4000),
                "rule_id": alert.get("rule_id"),
                "details": alert.get("details", {}),
            },
        }
        return {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": _short(alert.get("id"), 255),
            "payload": {k: v for k, v in payload.items() if v not in (None, "")},
        }

    async def send(self, alerts: list[dict]) -> None:
        failures = 0
        first: NotifyError | None = None
        for a in alerts:
            try:
                await self.post(self.event(a))
            except NotifyError as exc:
                failures += 1
                first = first or exc
        if first is not None:
            raise NotifyError(f"{first} ({failures} of {len(alerts)} events failed)")
