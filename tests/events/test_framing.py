"""How an ingest body is split into items: one JSON value, a JSON array, or NDJSON."""

from __future__ import annotations

import pytest

from agentwatch.events.codecs.framing import BodyError, split_items


def items(body: bytes) -> list[tuple[int, object, bytes | None, str | None]]:
    return list(split_items(body, max_items=100))


def test_a_pretty_printed_object_is_one_item():
    body = b'{\n  "event_type": "process.exec",\n  "data": {"exe": "/bin/sh"}\n}\n'
    assert items(body) == [(0, {"event_type": "process.exec", "data": {"exe": "/bin/sh"}}, body.rstrip(), None)]


def test_one_line_then_blank_lines_is_one_item():
    assert items(b'{"a": 1}\n\n  \n') == [(0, {"a": 1}, b'{"a": 1}', None)]


def test_ndjson_is_one_item_a_line_and_a_bad_line_is_named():
    body = b'{"a": 1}\r\n# a comment\n{"a": 2}\n{"a": \n// another\n{"a": 3}'
    got = items(body)
    assert [(i, v, raw) for i, v, raw, _ in got] == [
        (0, {"a": 1}, b'{"a": 1}'),
        (1, {"a": 2}, b'{"a": 2}'),
        (2, None, b'{"a":'),
        (3, {"a": 3}, b'{"a": 3}'),
    ]
    assert got[2][3].startswith("malformed JSON") and [e for *_, e in got].count(None) == 3


def test_ndjson_after_a_leading_comment():
    assert [v for _, v, _, _ in items(b'# exported\n{"a": 1}\n{"a": 2}\n')] == [{"a": 1}, {"a": 2}]


def test_an_array_is_one_item_an_element():
    assert [v for _, v, raw, _ in items(b'[{"a": 1}, {"a": 2}]')] == [{"a": 1}, {"a": 2}]


def test_too_many_lines_is_refused():
    with pytest.raises(BodyError) as refused:
        list(split_items(b'{"a": 1}\n' * 3, max_items=2))
    assert refused.value.status == 413
