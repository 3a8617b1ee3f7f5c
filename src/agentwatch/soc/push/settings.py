"""Settings of Web Push (``[push]`` in the config file, ``AGENTWATCH_PUSH__*``)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

SUBJECT = re.compile(r"(mailto:[^\s@<>]{1,200}@[^\s@<>]{1,200}|https://[^\s<>]{1,400})")


class PushSettings(BaseModel):
    enabled: bool = Field(
        True, description="push new alerts to subscribed responders and accept new subscriptions and test pushes"
    )
    subject: str = Field(
        "mailto:agentwatch@localhost",
        description="the VAPID contact (sub claim) push services may use to reach the operator: mailto: or https: URL",
    )
    min_severity: int = Field(7, ge=0, le=10, description="alerts below this severity are not pushed")
    max_subscriptions_per_user: int = Field(
        10, ge=1, le=100, description="subscriptions (browsers, devices) one user may register"
    )
    ttl_s: int = Field(
        3600, ge=0, le=2_419_200, description="seconds a push service keeps a message for an offline device (TTL)"
    )
    timeout_s: float = Field(10.0, ge=0.5, le=60, description="time limit of one request to a push service")
    allow_http: bool = Field(False, description="accept http:// endpoints besides https:// (tests, on-premise relays)")
    allow_private: bool = Field(
        False, description="let endpoints reach loopback/private addresses (tests, an on-premise push relay)"
    )

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        if not SUBJECT.fullmatch(v):
            raise ValueError("must be a mailto: address or an https:// URL")
        return v
