"""The catalogue: the bundled index (``index.json`` beside this module, signed by the key of
``publisher.json``) and, when ``marketplace.index_url`` is set, a remote index fetched at most
every ``refresh_minutes``. Every item of both is checked (shape, then signature against the
trusted keys: the bundled publisher key and ``marketplace.trusted_keys``); an item that fails is
kept in the list with ``verified: false`` and its reason, and so is a remote item older than a
version of it an earlier fetch verified (an old signed index replayed). A remote index may carry a
``sequence`` (it is then signed as a whole): one not higher than the last accepted refuses the
whole index. What was accepted is kept in the store (:mod:`.index_state`), so this holds across
restarts and nodes; so is the last index accepted, whose items are listed after a restart (checked
again) until a fetch succeeds. A slug belongs to the first index that holds it (bundled first); a later
duplicate is dropped and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine

from agentwatch.marketplace import index_state
from agentwatch.marketplace.items import SLUG_RE, shape_problem
from agentwatch.marketplace.settings import MarketplaceSettings
from agentwatch.marketplace.signing import INDEX_DOMAIN, key_id, load_public, signed_bytes, verify_index, verify_item
from agentwatch.net.bounded_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_bounded
from agentwatch.net.ssrf import SSRFError, UnresolvedHost

MAX_ITEMS = 500
MAX_SEQUENCE = 2**63 - 1
FORMAT = "agentwatch-marketplace/1"


@dataclass
class Entry:
    item: dict[str, Any]
    source: str  # "bundled" | "remote"
    reason: str | None

    @property
    def verified(self) -> bool:
        return self.reason is None


@dataclass
class Parsed:
    entries: list[Entry]
    dropped: int  # items without a readable slug
    sequence: int | None = None
    digest: str | None = None  # SHA-256 of the signed bytes of an index with a sequence


@dataclass
class Remote:
    url: str | None = None
    fetched_at: float | None = None  # wall clock of the last attempt
    error: str | None = None
    entries: list[Entry] = field(default_factory=list)
    checked: float = -1e18  # monotonic time of the last attempt


@cache
def bundled_bytes() -> bytes:
    return resources.files("agentwatch.marketplace").joinpath("index.json").read_bytes()


@cache
def bundled_key() -> Ed25519PublicKey:
    doc = orjson.loads(resources.files("agentwatch.marketplace").joinpath("publisher.json").read_bytes())
    return load_public(doc["public_key"])


def trusted(settings: MarketplaceSettings) -> dict[str, Ed25519PublicKey]:
    keys = [bundled_key(), *(load_public(k) for k in settings.trusted_keys)]
    return {key_id(k): k for k in keys}


def _check_whole(doc: dict[str, Any], keys: dict[str, Ed25519PublicKey]) -> tuple[int | None, str | None]:
    """The index's sequence and digest; ValueError naming the rule when its ``sequence`` is not a
    whole number in range, or it carries one without a signature of the whole index that verifies."""
    sequence = doc.get("sequence")
    if "sequence" in doc and (type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE):
        raise ValueError(f"sequence: must be an integer from 1 to {MAX_SEQUENCE}")
    if sequence is None and "signature" not in doc:
        return None, None
    why = verify_index(doc, keys)
    if why is not None:
        if sequence is not None and why.startswith("signature: missing"):
            why += " (an index with a sequence must be signed as a whole)"
        raise ValueError(why)
    if sequence is None:
        return None, None
    return sequence, hashlib.sha256(signed_bytes(doc, INDEX_DOMAIN)).hexdigest()


def parse(body: bytes, source: str, keys: dict[str, Ed25519PublicKey]) -> Parsed:
    """The entries of an index document, how many items were dropped (no readable slug), and its
    sequence; ValueError naming the rule when the document itself is not an index, or is refused."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("index: not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("items"), list):
        raise ValueError(f'index: must be an object with "format": "{FORMAT}" and an "items" list')
    if len(doc["items"]) > MAX_ITEMS:
        raise ValueError(f"index: more than {MAX_ITEMS} items")
    sequence, digest = _check_whole(doc, keys)
    out, dropped = [], 0
    for raw in doc["items"]:
        slug = raw.get("slug") if isinstance(raw, dict) else None
        if not isinstance(slug, str) or SLUG_RE.fullmatch(slug) is None:
            dropped += 1
            continue
        reason = shape_problem(raw) or verify_item(raw, keys)
        out.append(Entry(raw, source, reason))
    return Parsed(out, dropped, sequence, digest)


def bundled(settings: MarketplaceSettings) -> list[Entry]:
    return parse(bundled_bytes(), "bundled", trusted(settings)).entries


async def fetch(settings: MarketplaceSettings) -> bytes:
    from agentwatch.net.ssrf import guarded_client

    if settings.index_url is None:
        raise ValueError("index_url: not set")
    try:
        async with (
            asyncio.timeout(settings.timeout_s),
            guarded_client(allow_private=settings.allow_private, timeout=settings.timeout_s) as client,
            client.stream("GET", settings.index_url, headers={"Accept-Encoding": ACCEPT_ENCODING}) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"the index answered {response.status_code}")
            return await read_bounded(response, settings.max_bytes)
    except BodyTooLarge:
        raise ValueError(f"the index is larger than marketplace.max_bytes ({settings.max_bytes} bytes)") from None
    except BadEncoding as exc:
        raise ValueError(str(exc)) from None
    except TimeoutError:
        raise ValueError(f"no whole answer within marketplace.timeout_s ({settings.timeout_s:g} s)") from None
    except httpx.HTTPError as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, SSRFError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None and not isinstance(cause, UnresolvedHost):
            raise ValueError(f"refused by the SSRF guard ({str(cause).removeprefix('url: ')})") from None
        raise ValueError(f"cannot reach the index ({type(exc).__name__})") from None


class Catalogue:
    """The bundled entries and the remote ones (refreshed at most every ``refresh_minutes``).
    With ``engine``, what the remote index showed is kept in the store; without, in memory."""

    def __init__(self, settings: MarketplaceSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.remote = Remote(url=settings.index_url)
        self._lock = asyncio.Lock()
        self._bundled: list[Entry] | None = None
        self._state = index_state.State()  # without an engine
        self._restored = False  # the last index accepted was read back from the store
        self.dropped = 0

    async def _refresh(self) -> None:
        s = self.settings
        if s.index_url is None or time.monotonic() - self.remote.checked < s.refresh_minutes * 60:
            return
        async with self._lock:
            if time.monotonic() - self.remote.checked < s.refresh_minutes * 60:
                return
            self.remote.checked = time.monotonic()
            source = index_state.source_key(s.index_url)
            if not self._restored:
                self._restored = True
                await self._restore(source)
            self.remote.fetched_at = time.time()
            scheme = s.index_url.split(":", 1)[0].lower()
            try:
                if scheme != "https" and not s.allow_http:
                    raise ValueError("index_url: scheme must be https (marketplace.allow_http is off)")
                body = await fetch(s)
                parsed = await asyncio.to_thread(parse, body, "remote", trusted(s))
                await self._no_rollback(source, parsed, body)
            except ValueError as exc:
                self.remote.error = str(exc)  # the last good entries stay listed
                return
            self.remote.entries, self.remote.error, self.dropped = parsed.entries, None, parsed.dropped

    async def _restore(self, source: str) -> None:
        """List the last index accepted from ``source`` (kept in the store), checked again with the
        keys trusted now and against the versions listed before, until a fetch succeeds. A kept
        index the keys refuse now as a whole is not listed."""
        if self.engine is None:
            return
        state = await asyncio.to_thread(index_state.load, self.engine, source)
        body = index_state.kept(state, self.settings.max_bytes)
        if body is None:
            return
        try:
            parsed = await asyncio.to_thread(parse, body, "remote", trusted(self.settings))
            items = [(e.item["slug"], e.item["version"]) for e in parsed.entries if e.verified]
            _, refused = index_state.judge(state, parsed.sequence, parsed.digest, items)
        except ValueError:
            return
        for e in parsed.entries:
            if e.verified and e.item["slug"] in refused:
                e.reason = refused[e.item["slug"]]
        self.remote.entries, self.dropped = parsed.entries, parsed.dropped

    async def _no_rollback(self, source: str, parsed: Parsed, body: bytes) -> None:
        """Refuse an index whose sequence is not higher than the last one accepted from this source
        (index_state.Refused), and mark unverified an item older than a version of it a fetch
        verified before: a validly signed old copy of the index served again (a replay) must not
        roll an item back. What was accepted is kept in the store, read again and written with
        one conditional write, so nodes sharing it agree; an installed item is never rolled back
        either (an install older than the installed version is refused)."""
        items = [(e.item["slug"], e.item["version"]) for e in parsed.entries if e.verified]
        for _ in range(5):
            before = self._state
            if self.engine is not None:
                before = await asyncio.to_thread(index_state.load, self.engine, source)
            after, refused = index_state.judge(before, parsed.sequence, parsed.digest, items)
            after = replace(after, document=body.decode() if len(body) <= self.settings.max_bytes else None)
            if after == before:
                break
            if self.engine is None:
                self._state = after
                break
            if await asyncio.to_thread(index_state.save, self.engine, source, before, after):
                break
        else:
            raise ValueError("index: its state kept changing under other nodes' writes; tried again next time")
        for e in parsed.entries:
            if e.verified and e.item["slug"] in refused:
                e.reason = refused[e.item["slug"]]

    async def entries(self) -> list[Entry]:
        await self._refresh()
        if self._bundled is None:
            self._bundled = await asyncio.to_thread(bundled, self.settings)
        out: dict[str, Entry] = {}
        for e in [*self._bundled, *self.remote.entries]:
            out.setdefault(e.item["slug"], e)
        return list(out.values())

    async def find(self, slug: str) -> Entry | None:
        return next((e for e in await self.entries() if e.item["slug"] == slug), None)

    def remote_state(self) -> dict[str, Any] | None:
        if self.settings.index_url is None:
            return None
        from agentwatch.masking import mask_url

        return {
            "url": mask_url(self.settings.index_url, hide_path=True),
            "fetched_at": self.remote.fetched_at,
            "error": self.remote.error,
            "items": len(self.remote.entries),
            "dropped": self.dropped,
        }


def catalogue_of(aw: Any) -> Catalogue:
    found = aw.__dict__.get("marketplace_catalogue")
    if found is None:
        found = Catalogue(aw.settings.marketplace, aw.engine)
        aw.marketplace_catalogue = found
    return found
