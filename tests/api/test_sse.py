"""The SSE data line: one line for every line reader, the same JSON value."""

from __future__ import annotations

import orjson

from agentwatch.api.sse import data_line


def test_separators_that_splitlines_honours_are_escaped_and_the_value_is_unchanged() -> None:
    value = {"thought": "a\u2028b\u2029c\x85d", "plain": "é ✓ 😀", "n": 1}
    line = data_line(orjson.dumps(value))
    assert line.decode().splitlines() == [line.decode()]
    assert orjson.loads(line.removeprefix(b"data: ")) == value


def test_text_without_them_is_passed_through_unchanged() -> None:
    text = orjson.dumps({"x": "é ✓ 😀 \u2027 \u202a"})
    assert data_line(text) == b"data: " + text
