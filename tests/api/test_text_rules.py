"""The shared rules for analysts' short text (titles, assignees)."""

from __future__ import annotations

import pytest

from agentwatch.api.text_rules import assignee_name, printable_title


@pytest.mark.parametrize(
    "title",
    [
        "",
        "   ",
        "\u200b",  # zero-width space
        "\u200b\u2060\ufeff",  # zero-width space, word joiner, byte order mark
        "\u00ad \u200d",  # soft hyphen, a blank, zero-width joiner
        "\u3000",  # ideographic space
    ],
)
def test_a_title_that_shows_nothing_is_blank(title: str) -> None:
    with pytest.raises(ValueError, match="blank"):
        printable_title(title)


@pytest.mark.parametrize("title", ["x", "\u200bx", "Exfiltration via curl", "\u65e5\u672c", "\u0301"])
def test_a_title_with_anything_visible_passes(title: str) -> None:
    assert printable_title(title) == title


def test_assignee_names_are_stored_composed() -> None:
    decomposed = "Jose\u0301"  # "e" then a combining acute accent
    composed = "Jos\u00e9"
    assert decomposed != composed
    assert assignee_name(decomposed) == composed
    assert assignee_name(composed) == composed
    assert assignee_name(None) is None


@pytest.mark.parametrize("name", [" ana", "ana ", "an\x00a", "an\u202ea", "an\u2028a"])
def test_assignee_names_refuse_what_printable_names_refuse(name: str) -> None:
    with pytest.raises(ValueError, match="printable"):
        assignee_name(name)


def test_an_assignee_longer_than_the_column_once_composed_is_refused() -> None:
    # U+0344 (combining Greek dialytika tonos) has no one-code-point composed form: NFC writes it
    # as U+0308 U+0301 (and "q" with U+0308 has no precomposed letter), so 64 of them after "q"
    # compose to 129 characters
    assert assignee_name("q" + "\u0344" * 63) == "q" + "\u0308\u0301" * 63
    with pytest.raises(ValueError, match="at most 128 characters once composed"):
        assignee_name("q" + "\u0344" * 64)
