"""What a remote index source showed last, kept in the store (``marketplace_index_state``), so an
older copy of the index served again (a replay) is refused after a restart and on every node.

Per source (the SHA-256 of its URL: the URL may hold a token): the highest ``sequence`` accepted
and the digest of that index, and the newest version of each item a fetch verified. A fetched
index is judged against the stored state (:func:`judge`): an index with a sequence must carry a
higher one than the last accepted (the same index fetched again, same digest, is not a new one),
one without a sequence is refused once the source carried one, and an item older than a version
listed before is marked unverified. The text of the last index accepted is kept beside (at most
``marketplace.max_bytes``): after a restart its items are listed, checked again, until a fetch
succeeds (:func:`kept`). The new state is written with one conditional write on the
row's ``generation`` (:func:`save`); when another node wrote first, the caller reads and judges
again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.marketplace.items import version_key
from agentwatch.marketplace.schema import marketplace_index_state as t

MAX_SLUGS = 2000  # versions remembered per source (an index holds at most 500 items)


@dataclass(frozen=True)
class State:
    sequence: int | None = None
    digest: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    generation: int = 0  # 0: no row yet
    document: str | None = None  # the text of the last index accepted (see :func:`kept`)


class Refused(ValueError):
    """The index as a whole is refused; the message names the field and the rule."""


def source_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def load(engine: Engine, source: str) -> State:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.source == source)).first()
    if row is None:
        return State()
    versions = orjson.loads(row.versions)
    versions = versions if isinstance(versions, dict) else {}
    return State(row.sequence, row.digest, versions, row.generation, row.document)


def save(engine: Engine, source: str, before: State, after: State) -> bool:
    """Write ``after`` if the row is still ``before``; False when another writer came first."""
    values = {
        "sequence": after.sequence,
        "digest": after.digest,
        "versions": orjson.dumps(after.versions).decode(),
        "generation": before.generation + 1,
        "document": after.document,
        "updated_at": time.time(),
    }
    with engine.begin() as conn:
        if before.generation == 0:
            try:
                conn.execute(t.insert().values(source=source, **values))
            except IntegrityError:
                return False
            return True
        done = conn.execute(update(t).where(t.c.source == source, t.c.generation == before.generation).values(**values))
        return done.rowcount == 1


def judge(
    state: State, sequence: int | None, digest: str | None, items: list[tuple[str, str]]
) -> tuple[State, dict[str, str]]:
    """The state after accepting an index of ``sequence`` (its ``digest``) whose verified items
    are ``items`` (slug, version), and the reason each replayed item (slug) is refused for.
    Raises Refused when the whole index is."""
    if sequence is None and state.sequence is not None:
        raise Refused(
            f"sequence: missing, but the last index accepted from this source carried {state.sequence} "
            "(an older index replayed, or its signature stripped?)"
        )
    if sequence is not None and state.sequence is not None:
        same = sequence == state.sequence and digest == state.digest
        if sequence <= state.sequence and not same:
            raise Refused(
                f"sequence: {sequence} must be greater than {state.sequence}, the sequence of the last index "
                "accepted from this source (an older index replayed?)"
            )
    versions = dict(state.versions)
    refused: dict[str, str] = {}
    for slug, version in items:
        seen = versions.get(slug)
        if seen is not None and version_key(version) < version_key(seen):
            refused[slug] = (
                f"version: {version} is older than {seen}, which the index listed before (an older index replayed?)"
            )
        else:
            versions[slug] = version
    if len(versions) > MAX_SLUGS:  # forget items the index no longer lists first
        listed = {slug for slug, _ in items}
        others = [s for s in versions if s not in listed]
        for slug in others[: len(versions) - MAX_SLUGS]:
            del versions[slug]
    # (without a sequence, none was stored: refused above otherwise)
    return State(sequence, digest if sequence is not None else None, versions, state.generation), refused


def kept(state: State, max_bytes: int) -> bytes | None:
    """The last index accepted from the source, unless none was kept or it is larger than
    ``max_bytes`` (the limit lowered since)."""
    if state.document is None:
        return None
    body = state.document.encode()
    return body if len(body) <= max_bytes else None
