"""The cursor of a list paged by keyset: the sort key and the id of the last row a page gave,
as base64url JSON (a float survives the round trip exactly), opaque to clients. The list
then goes on from right after that row, wherever rows written meanwhile landed."""

from __future__ import annotations

import base64

import orjson

NOT_OURS = "cursor: not a cursor returned by this API"


def encode_cursor(sort_key: float, row_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort_key, row_id])).decode().rstrip("=")


def decode_cursor(cursor: str, max_id: int) -> tuple[float, str]:
    """``(sort key, row id)``; raises ValueError for a cursor this server did not make (its
    row id longer than ``max_id`` among them)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_key, row_id = orjson.loads(raw)
    except Exception:
        raise ValueError(NOT_OURS) from None
    if isinstance(sort_key, bool) or not isinstance(sort_key, int | float) or not isinstance(row_id, str):
        raise ValueError(NOT_OURS)
    if len(row_id) > max_id:
        raise ValueError(NOT_OURS)
    return float(sort_key), row_id
