"""The dashboard's routes: ``/`` and ``/ui`` redirect to ``/ui/``, which serves the app shell;
``/ui/{asset}`` serves its scripts and styles from :mod:`agentwatch.web.assets`.

All are public: the files hold no data, and every data call the app makes carries the
signed-in user's token to the API's own guarded routes. Files are answered with their
content type, a strong ETag (``If-None-Match`` answers 304) and ``Cache-Control: no-cache``
(kept, but checked again on each use: file names carry no version), and every answer,
redirects and refusals included, with the headers of :mod:`agentwatch.web.headers`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.security import PUBLIC, require
from agentwatch.web.assets import ASSETS, INDEX, Asset
from agentwatch.web.headers import security_headers

router = APIRouter(tags=["dashboard"], include_in_schema=False)

PREFIX = "/ui/"
MAX_ASSET_CHARS = 256
CACHE_CONTROL = "no-cache"
DEPS = [require(PUBLIC)]


def _headers(request: Request) -> dict[str, str]:
    return security_headers(request.headers.get("host"))


def _redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(PREFIX, status_code=307, headers=_headers(request))


def _etag_matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return given.strip() == "*" or etag in (t.strip().removeprefix("W/") for t in given.split(","))


def _serve(request: Request, asset: Asset) -> Response:
    headers = {**_headers(request), "ETag": asset.etag, "Cache-Control": CACHE_CONTROL}
    if _etag_matches(request, asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def _check_asset(request: Request, name: str) -> None:
    """Refuse (400) a name that could only be an attempt to leave the folder (or too long)."""
    if len(name) > MAX_ASSET_CHARS:
        raise InvalidRequest(f"asset: longer than {MAX_ASSET_CHARS} characters", headers=_headers(request))
    if "\\" in name or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise InvalidRequest("asset: must not contain a backslash or a control character", headers=_headers(request))
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise InvalidRequest(
            "asset: must be a relative path without empty, '.' or '..' segments", headers=_headers(request)
        )


@router.get("/", dependencies=DEPS, response_class=Response)
def root(request: Request) -> Response:
    """The server's root leads to the dashboard."""
    return _redirect(request)


@router.get("/ui", dependencies=DEPS, response_class=Response)
def ui_bare(request: Request) -> Response:
    return _redirect(request)


@router.get("/ui/", dependencies=DEPS, response_class=Response)
def ui_index(request: Request) -> Response:
    """The app shell (the pages are routed in the browser, after ``#``)."""
    return _serve(request, ASSETS[INDEX])


@router.get("/ui/{asset:path}", dependencies=DEPS, response_class=Response)
def ui_asset(request: Request, asset: str) -> Response:
    """One of the dashboard's files; anything not shipped with the package is 404."""
    _check_asset(request, asset)
    found = ASSETS.get(asset)
    if found is None:
        raise NotFound(f"asset: no dashboard file {asset[:64]!r}", headers=_headers(request))
    return _serve(request, found)
