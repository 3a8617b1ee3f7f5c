"""Which session, and which view of it, a ``/sessions/...`` path names.

An AOP ``session_id`` may hold any character but control characters, ``/`` included. In
a path such an id is one segment with its ``/`` written ``%2F`` (as any client library
encodes a path segment): ``/sessions/team%2Frun-7/export``. The server decodes the path
before routing, so from the decoded path alone ``/sessions/a/export`` could be the export
of ``a`` or the detail of ``a/export``; the request's undecoded path (``raw_path``) tells.
Session routes therefore match any path under ``/sessions/`` and each one reads its
target here: the first raw segment is the id, what follows names the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

from starlette.types import Scope

from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.events.model import EventError
from agentwatch.sessions.wire import identifier

PREFIX = b"/sessions/"
View = Literal["detail", "export"]


@dataclass(frozen=True)
class SessionPath:
    session_id: str
    view: View


def _raw_path(scope: Scope) -> bytes:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.split(b"?", 1)[0]
    return scope["path"].encode()


def session_path(scope: Scope) -> SessionPath:
    """The session and view a request path names; 404 for a path that names neither, 400
    for an id that breaks the id rules (the message names ``id``)."""
    raw = _raw_path(scope)
    if not raw.startswith(PREFIX):
        raise NotFound(f"no route for {scope['path']!r}")
    segment, sep, rest = raw[len(PREFIX) :].partition(b"/")
    if not sep:
        view: View = "detail"
    elif rest == b"export":
        view = "export"
    else:
        raise NotFound(f"no route for {scope['path']!r}")
    try:
        text = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("id: must be UTF-8 once percent-decoded") from None
    try:
        sid = identifier(text, "id")
    except EventError as exc:
        raise InvalidRequest(str(exc)) from None
    return SessionPath(sid, view)  # type: ignore[arg-type]
