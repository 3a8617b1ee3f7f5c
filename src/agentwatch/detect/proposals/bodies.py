"""Request bodies of the proposal routes, every field bounded and checked.

Test cases are whole OISP envelopes (as ``POST /api/v1/ingest`` takes them): each is built into
an Event exactly as ingest would (:func:`agentwatch.detect.atr.testcases.event_from_body`) when
the proposal is created or changed, so a case that could never be ingested is refused up front,
naming the case and the field.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from agentwatch.api.text_rules import printable_name, printable_title
from agentwatch.detect.atr.testcases import event_from_body
from agentwatch.events.model import EventError

MAX_LOGIC_BYTES = 64 * 1024  # UTF-8 bytes of the Sigma YAML
MAX_TEXT = 10_000
MAX_REASON = 2_000
MAX_TEST_CASES = 50  # must_match and must_not_match together
MAX_CASE_BYTES = 16 * 1024  # one test event as JSON
MAX_METRICS = 64
# ATT&CK technique (T1059, T1059.001) or tactic (TA0002) ids, with or without Sigma's "attack." prefix
MITRE_RE = re.compile(r"(?:attack\.)?(t[0-9]{4}(?:\.[0-9]{3})?|ta[0-9]{4})", re.ASCII | re.IGNORECASE)
METRIC_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}", re.ASCII)
# the JSON text of a body: room for every limit even with each character escaped (\uXXXX)
PROPOSAL_BODY_BYTES = 6 * (MAX_LOGIC_BYTES + MAX_TEXT + 256) + MAX_TEST_CASES * MAX_CASE_BYTES + 64 * 1024
NOTE_BODY_BYTES = 6 * MAX_TEXT + 1024
SMALL_BODY_BYTES = 64 * 1024


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold it
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return _no_nul(value)


def _logic(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_LOGIC_BYTES:
        raise ValueError(f"larger than {MAX_LOGIC_BYTES} bytes of UTF-8")
    return _not_blank(value)


def _mitre(values: list[str]) -> list[str]:
    out: list[str] = []
    for i, tag in enumerate(values):
        m = MITRE_RE.fullmatch(tag)
        if m is None:
            raise ValueError(f"item {i} must be an ATT&CK id such as T1059, T1059.001, TA0002 or attack.t1059")
        out.append("attack." + m.group(1).lower())
    return list(dict.fromkeys(out))


Title = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(printable_title)]
Description = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_no_nul)]
Logic = Annotated[
    str, Field(min_length=1, max_length=MAX_LOGIC_BYTES, description="Sigma YAML"), AfterValidator(_logic)
]
MitreTags = Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=32), AfterValidator(_mitre)]


class TestCases(BaseModel):
    """Events (OISP envelopes) the rule must match and must not match; at most 50 in all."""

    model_config = ConfigDict(extra="forbid")
    must_match: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_TEST_CASES)
    must_not_match: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_TEST_CASES)

    @model_validator(mode="after")
    def _cases_are_events(self) -> TestCases:
        if len(self.must_match) + len(self.must_not_match) > MAX_TEST_CASES:
            raise ValueError(f"at most {MAX_TEST_CASES} cases in all (must_match and must_not_match)")
        for name in ("must_match", "must_not_match"):
            for i, body in enumerate(getattr(self, name)):
                where = f"{name}[{i}]"
                try:
                    size = len(orjson.dumps(body))
                except TypeError:
                    raise ValueError(f"{where}: cannot be stored as JSON") from None
                if size > MAX_CASE_BYTES:
                    raise ValueError(f"{where}: larger than {MAX_CASE_BYTES} bytes as JSON")
                try:
                    event_from_body(body)
                except EventError as exc:
                    raise ValueError(f"{where}.{exc.field}: {exc.rule}") from None
        return self


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    description: Description = ""
    logic: Logic
    mitre_tags: MitreTags = []
    test_cases: TestCases


class ProposalPatch(BaseModel):
    """Changes while the proposal is open or evaluated; a new logic or new test cases make a new
    logic version (earlier evals no longer count) and put the proposal back to ``open``."""

    model_config = ConfigDict(extra="forbid")
    title: Title | None = None
    description: Description | None = None
    logic: Logic | None = None
    mitre_tags: MitreTags | None = None
    test_cases: TestCases | None = None


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]


class ExternalMetrics(BaseModel):
    """Metric deltas from an outside harness (AiSOC's scripts/run_evals.py), kept as given;
    they are shown with the eval but never decide whether it passes."""

    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_name)] = "external"
    metrics: dict[str, float] = Field(max_length=MAX_METRICS)

    @field_validator("metrics")
    @classmethod
    def _names_and_numbers(cls, value: dict[str, float]) -> dict[str, float]:
        for name, number in value.items():
            if METRIC_RE.fullmatch(name) is None:
                raise ValueError(f"name {name[:64]!r} must be 1-64 letters, digits or _ . : / -")
            if not math.isfinite(number):
                raise ValueError(f"{name}: must be a finite number")
        return value


class EvalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external: ExternalMetrics | None = None


class DecideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON), AfterValidator(_not_blank)]
    logic_version: int | None = Field(
        None, ge=1, le=2**31 - 1, strict=True, description="the version reviewed; 409 when the logic changed since"
    )
