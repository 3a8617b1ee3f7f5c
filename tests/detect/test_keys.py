"""Keys of detection state are bounded in size (``detect.keys.bounded``)."""

from __future__ import annotations

import hashlib

from agentwatch.detect.keys import MAX_KEY_TEXT, bounded


def test_a_key_of_short_parts_is_kept_as_it_is() -> None:
    key = ("dev-host", "mcp-server", "read_file", 42, None)
    assert bounded(key) is key
    assert bounded("x" * MAX_KEY_TEXT) == "x" * MAX_KEY_TEXT


def test_long_texts_become_digests_wherever_they_are_in_the_key() -> None:
    long_text = "y" * (MAX_KEY_TEXT + 1)
    digest = "sha256:" + hashlib.sha256(long_text.encode()).hexdigest()
    assert bounded(long_text) == digest
    assert bounded(("host", long_text, 7)) == ("host", digest, 7)
    # inside a nested tuple too, and two long texts that differ stay apart
    assert bounded(("host", ("server", long_text))) == ("host", ("server", digest))
    assert bounded(("a", long_text)) != bounded(("a", long_text[:-1] + "z"))


def test_a_text_subclass_is_bounded_like_a_text() -> None:
    class Name(str):
        pass

    long_name = Name("z" * (MAX_KEY_TEXT + 5))
    assert bounded(("host", long_name)) == ("host", "sha256:" + hashlib.sha256(long_name.encode()).hexdigest())
