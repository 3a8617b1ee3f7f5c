"""A playbook document as a user writes it, checked whole before it is stored or run.

Every problem is collected (not only the first), each naming its field the way a user reads it:
``steps[2].params.url``. A step's parameters are checked by its action's model
(:mod:`agentwatch.soc.playbooks.actions`) and by the action's own checks (the SSRF guard on a
webhook URL); a comment step without ``case_id`` needs an ``add_alert_to_case`` step before it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentwatch.alerts.model import ALERT_TYPES
from agentwatch.api.text_rules import printable_name, printable_title
from agentwatch.soc.playbooks.actions import ACTIONS

MAX_STEPS = 50
AlertType = Literal[ALERT_TYPES]  # type: ignore[valid-type]
Short = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_name)]
Tag = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable_name)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class Trigger(BaseModel):
    """``manual``: run only by ``execute``; ``alert``: also on every new alert matching all the
    filters given (severity at least ``min_severity``; type, rule id among those listed; at least
    one of ``tags``)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["manual", "alert"] = "manual"
    min_severity: int = Field(0, ge=0, le=10, strict=True)
    alert_types: list[AlertType] = Field(default_factory=list, max_length=len(ALERT_TYPES))
    rule_ids: list[Short] = Field(default_factory=list, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _filters_only_for_alert_triggers(self) -> Trigger:
        if self.type == "manual":
            for name in ("min_severity", "alert_types", "rule_ids", "tags"):
                if name in self.model_fields_set:
                    raise ValueError(f"{name}: only for a trigger of type alert")
        return self


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=64)
    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_title)] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    continue_on_error: bool = Field(False, strict=True, description="true: a failure of this step lets the run go on")
    requires_approval: bool = Field(
        False, strict=True, description="true: a run of the playbook waits for an approval before its first step"
    )


class PlaybookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_title)]
    description: Annotated[str, Field(max_length=4000), AfterValidator(_no_nul)] = ""
    enabled: bool = Field(True, strict=True)
    trigger: Trigger = Field(default_factory=Trigger)
    requires_approval: bool = Field(False, strict=True, description="true: every run waits for an approval first")
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)


class Invalid(ValueError):
    """The document's problems, each ``{"field", "rule"}``; the message names the first."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{problems[0]['field']}: {problems[0]['rule']}")
        self.problems = problems


def field_path(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def problems_of(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as ``{"field", "rule"}``; a model check's "name: rule" is named by its field."""
    out = []
    for err in exc.errors():
        rule = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        loc = tuple(err.get("loc", ()))
        named, sep, rest = rule.partition(": ")
        if sep and named.isidentifier() and err.get("type") == "value_error":
            loc, rule = (*loc, named), rest
        out.append({"field": field_path(prefix, loc), "rule": rule})
    return out


def check_step(index: int, step: Step, settings: Any) -> tuple[Any, list[dict[str, str]]]:
    """(the step's validated parameters or None, its problems)."""
    where = f"steps[{index}]"
    action = ACTIONS.get(step.action)
    if action is None:
        return None, [{"field": f"{where}.action", "rule": f"must be one of {', '.join(ACTIONS)}"}]
    try:
        params = action.params.model_validate(step.params)
    except ValidationError as exc:
        return None, problems_of(exc, f"{where}.params")
    try:
        action.check(params, settings)
    except ValueError as exc:
        named, _, rule = str(exc).partition(": ")
        return None, [{"field": f"{where}.params.{named}", "rule": rule}]
    return params, []


def parse_steps(raw: Any, settings: Any) -> list[tuple[Step, Any]]:
    """Validated steps from a JSON list (``steps`` of a playbook or of a dry run); raises Invalid."""

    class _Steps(BaseModel):
        steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    try:
        steps = _Steps.model_validate({"steps": raw}).steps
    except ValidationError as exc:
        raise Invalid(problems_of(exc)) from None
    return _checked(steps, settings)


def _checked(steps: list[Step], settings: Any) -> list[tuple[Step, Any]]:
    problems: list[dict[str, str]] = []
    out = []
    case_before = False
    for i, step in enumerate(steps):
        params, found = check_step(i, step, settings)
        problems += found
        if params is not None and step.action == "add_case_comment" and params.case_id is None and not case_before:
            problems.append(
                {
                    "field": f"steps[{i}].params.case_id",
                    "rule": "required unless an add_alert_to_case step comes before",
                }
            )
        case_before = case_before or step.action == "add_alert_to_case"
        out.append((step, params))
    if problems:
        raise Invalid(problems)
    return out


def parse_playbook(doc: Any, settings: Any) -> dict[str, Any]:
    """The playbook as stored (steps with their parameters as given); raises Invalid."""
    try:
        pb = PlaybookIn.model_validate(doc)
    except ValidationError as exc:
        raise Invalid(problems_of(exc)) from None
    checked = _checked(pb.steps, settings)
    return {
        "name": pb.name,
        "description": pb.description,
        "enabled": pb.enabled,
        "trigger": pb.trigger.model_dump(mode="json"),
        "requires_approval": pb.requires_approval,
        "steps": [
            {
                "action": step.action,
                "name": step.name,
                "params": params.model_dump(mode="json", exclude_unset=True),
                "continue_on_error": step.continue_on_error,
                **({"requires_approval": True} if step.requires_approval else {}),
            }
            for step, params in checked
        ],
    }


def matches(trigger: dict[str, Any], alert: dict[str, Any]) -> bool:
    """Whether a new ``alert`` starts a playbook with this (automatic) trigger."""
    if trigger.get("type") != "alert" or int(alert.get("severity", 0)) < trigger.get("min_severity", 0):
        return False
    if trigger.get("alert_types") and alert.get("type") not in trigger["alert_types"]:
        return False
    if trigger.get("rule_ids") and alert.get("rule_id") not in trigger["rule_ids"]:
        return False
    return not trigger.get("tags") or any(t in trigger["tags"] for t in alert.get("tags", ()))
