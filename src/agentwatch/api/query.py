"""Query-string rules shared by the read APIs."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from agentwatch.api.errors import InvalidRequest


def only_query(*names: str) -> Any:
    """A dependency refusing query parameters the route does not know (a misspelt filter would
    otherwise be ignored silently and the answer would look filtered when it is not)."""
    known = frozenset(names)

    def check(request: Request) -> None:
        for name in request.query_params:
            if name not in known:
                raise InvalidRequest(f"{name[:64]}: unknown query parameter (known: {', '.join(sorted(known))})")

    return Depends(check)
