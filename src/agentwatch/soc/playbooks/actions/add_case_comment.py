"""``add_case_comment``: write a comment on a case: ``case_id``, or the case an earlier
``add_alert_to_case`` step of the run opened or used. The text takes the alert's fields
(:mod:`.templates`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from agentwatch.soc.cases import store as cases
from agentwatch.soc.playbooks.actions.add_alert_to_case import CASE_ID
from agentwatch.soc.playbooks.actions.base import Action, ActionError, Params, RunContext
from agentwatch.soc.playbooks.actions.templates import render

MAX_BODY = 10_000


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class AddCaseCommentParams(Params):
    body: Annotated[str, Field(min_length=1, max_length=MAX_BODY), AfterValidator(_text)]
    case_id: str | None = Field(None, pattern=CASE_ID, description="none: the case of an earlier add_alert_to_case")


class AddCaseComment(Action):
    name = "add_case_comment"
    summary = "comment on a case (case_id, or the one an earlier add_alert_to_case step used)"
    permission = "cases:write"
    params = AddCaseCommentParams

    def _target(self, ctx: RunContext, params: Any) -> str | None:
        target = params.case_id or ctx.case_id
        if target is None and not ctx.case_planned:
            raise ActionError("no case: give case_id, or put an add_alert_to_case step before this one")
        return target

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        target = self._target(ctx, params)
        body = render(params.body, ctx.alert, MAX_BODY)
        if target is None:
            return {"case_id": None, "on": "the case an earlier step would open", "body": body}
        if await asyncio.to_thread(cases.get_case, ctx.engine, target) is None:
            raise ActionError(f"case {target} does not exist")
        return {"case_id": target, "body": body}

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        target = self._target(ctx, params)
        if target is None:  # only a dry run plans a case
            raise ActionError("no case: the add_alert_to_case step before this one opened none")
        body = render(params.body, ctx.alert, MAX_BODY)
        try:
            comment = await asyncio.to_thread(cases.add_comment, ctx.engine, target, body, ctx.author)
        except cases.CaseFull as exc:
            raise ActionError(str(exc)) from None
        if comment is None:
            raise ActionError(f"case {target} does not exist")
        return {"case_id": target, "comment_id": comment["id"]}
