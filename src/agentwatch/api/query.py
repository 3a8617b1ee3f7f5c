"""Query-string rules shared by the read APIs."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from agentwatch.api.errors import InvalidRequest
from agentwatch.soc.auth.credentials import QUERY as CREDENTIAL_PARAMETER


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
