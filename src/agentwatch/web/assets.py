"""The dashboard's files, read once from the package into an in-memory table.

Only what the table holds is ever served: a request names a key of the table, never a path
on disk, so ``..``, absolute paths or symlinks cannot reach another file. Each file carries
its content type (from a fixed list of suffixes; any other file is not served) and a strong
ETag made from its bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
INDEX = "index.html"


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    etag: str


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        content_type = CONTENT_TYPES.get(suffix)
        if content_type is None:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[name] = Asset(name, body, content_type, etag)
    return found


def load() -> dict[str, Asset]:
    """Every servable file under ``static/``, keyed by its path relative to it (``js/app.js``)."""
    return _walk(resources.files("agentwatch.web") / "static")


ASSETS = load()
