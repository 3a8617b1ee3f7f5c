"""Query-string rules shared by the read APIs."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from agentwatch.api.errors import InvalidRequest
from agentwatch.api.text_rules import assignee_name
from agentwatch.soc.auth.credentials import QUERY as CREDENTIAL_PARAMETER
from agentwatch.store.keyset import decode_cursor


def only_query(*names: str) -> Any:
    """A dependency refusing query parameters the route does not know (a misspelt filter would
    otherwise be ignored silently and the answer would look filtered when it is not). The
    credential parameter (``?access_token=``, for clients such as EventSource that cannot set
    a header) is known to every route."""
    known = frozenset(names) | {CREDENTIAL_PARAMETER}

    def check(request: Request) -> None:
        for name in request.query_params:
            if name not in known:
                raise InvalidRequest(f"{name[:64]}: unknown query parameter (known: {', '.join(sorted(known))})")

    return Depends(check)


def assignee_filter(assignee: str | None, unassigned: bool | None) -> str | None:
    """An ``assignee`` query filter in stored form (alerts and cases); it and ``unassigned``
    exclude each other, whatever ``unassigned``'s value."""
    if assignee is None:
        return None
    if unassigned is not None:
        raise InvalidRequest("unassigned: not both unassigned and assignee (give one or the other)")
    try:
        return assignee_name(assignee)
    except ValueError as exc:
        raise InvalidRequest(f"assignee: {exc}") from None


def keyset_position(cursor: str | None, max_id: int) -> tuple[float, str] | None:
    """Where a keyset-paged list goes on from: the ``cursor`` query parameter decoded (None for
    the first page), or a 400 naming ``cursor`` when this server did not make it (a row id
    longer than ``max_id`` among such)."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, max_id)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
