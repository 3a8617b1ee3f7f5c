"""Splunk regexes for values beyond ASCII: the exact SPL text, and the pattern checked on a real
PCRE engine (GNU ``grep -P``, PCRE2, in the C locale so nothing but the pattern asks for UTF
mode) against UTF-8 text, as Splunk stores events."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlalchemy import create_engine

from agentwatch.federated.dialect import Window
from agentwatch.federated.fanout import translate
from agentwatch.federated.language import parse
from agentwatch.federated.settings import TargetSettings
from tests.federated.test_translate import read_spl

W = Window(1767225600.0, 1767229200.0)
ENGINE = create_engine("sqlite://")
SPLUNK = TargetSettings(name="s", kind="splunk", url="http://127.0.0.1:9", allow_private=True, max_rows=10)


def where(query: str) -> str:
    return translate(SPLUNK, parse(query), W, ENGINE).split(" | where ", 1)[1].rsplit(" | head ", 1)[0]


def test_non_ascii_values_put_the_regex_in_utf_mode() -> None:
    assert where('host contains "café"') == "match('host', \"(*UTF)(?i)caf\\\\x{e9}\")"
    assert where('host startswith "日本"') == "match('host', \"(*UTF)(?i)^\\\\x{65e5}\\\\x{672c}\")"
    assert where('agent contains "\\u00e9-😀"') == "match('agent', \"(*UTF)(?i)\\\\x{e9}\\\\x{2d}\\\\x{1f600}\")"
    assert where('host contains "build-1"') == "match('host', \"(?i)build\\\\x{2d}1\")"  # ASCII: as before


def pattern(query: str) -> str:
    """The regular expression Splunk gets: the string literal inside ``match(field, ...)``."""
    text = where(query)
    value, rest = read_spl(text[text.index(", ") + 2 :])
    assert rest == ")"
    return value


def pcre_matches(regex: str, subject: str) -> bool:
    done = subprocess.run(  # noqa: S603 (fixed program, the pattern as one argument)
        ["grep", "-cP", "--", regex],  # noqa: S607
        input=(subject + "\n").encode(),
        capture_output=True,
        env={"LC_ALL": "C"},
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


@pytest.mark.skipif(shutil.which("grep") is None, reason="needs GNU grep with -P")
@pytest.mark.parametrize(
    ("query", "subject", "matches"),
    [
        ('host contains "café"', "web-CAFÉ-01", True),
        ('host contains "café"', "web-cafe-01", False),
        ('host startswith "ñu"', "Ñu-2", True),
        ('host startswith "ñu"', "xñu", False),
        ('host contains "😀"', "a😀b", True),
        ('host contains "日本"', "東京日本", True),
        ('host contains "a.b"', "axb", False),  # every non-alphanumeric character is escaped
    ],
)
def test_the_pattern_matches_utf8_text_on_pcre(query: str, subject: str, matches: bool) -> None:
    assert pcre_matches(pattern(query), subject) is matches
