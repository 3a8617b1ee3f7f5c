"""What every playbook action shares: its parameter model, the run context, the two verbs.

An action is a small class: a name, a pydantic model of its parameters (checked when a
playbook is saved, and again before the step runs), :meth:`Action.preview`, which says what
the step would change and changes nothing, and :meth:`Action.apply`, which does it. Both
answer a small JSON document; both raise :class:`ActionError` (the message is shown in the
run) when the step cannot be done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ActionError(Exception):
    """A step cannot do what it says (its message goes into the run's step result)."""


class Params(BaseModel):
    """Base of every action's parameters: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class RunContext:
    """What a step sees: the server, the alert the run is about (as ``GET /api/v1/alerts/{id}``
    answers it), who the changes are made by, and the case an earlier step opened or used."""

    aw: Any
    alert: dict[str, Any]
    author: str  # recorded on what a step writes: "playbook:<id>" or "dry-run"
    run_id: str = ""
    playbook: dict[str, Any] | None = None
    case_id: str | None = None
    case_planned: bool = False  # a dry run: an earlier step would open a new case

    @property
    def engine(self) -> Any:
        return self.aw.engine


class Action:
    """One kind of step; subclasses set the class attributes and override the two verbs."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[type[Params]]
    # what the step does on a person's behalf: whoever saves a playbook holding the step needs it
    permission: ClassVar[str]

    def check(self, params: Any, settings: Any) -> None:
        """Checks beyond the model's that need the settings (raise ValueError("field: rule"))."""

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        """What the step would change; reads only."""
        raise NotImplementedError

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        """Do it; what was done."""
        raise NotImplementedError
