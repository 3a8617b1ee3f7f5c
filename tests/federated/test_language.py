"""The federated query language: what it parses into, and every rule it refuses with the
rule named and the character where it was broken."""

from __future__ import annotations

import pytest

from agentwatch.federated.language import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    MAX_QUERY_CHARS,
    And,
    Comparison,
    Not,
    Or,
    QueryError,
    fields_of,
    parse,
)
from agentwatch.federated.lexer import MAX_STRING_CHARS


def test_and_binds_tighter_than_or_and_not_binds_tightest() -> None:
    node = parse('host = "a" OR NOT severity > 3 AND pid = 7')
    assert node == Or(
        (
            Comparison("host", "=", ("a",)),
            And((Not(Comparison("severity", ">", (3,))), Comparison("pid", "=", (7,)))),
        )
    )


def test_parentheses_group_and_keywords_are_case_insensitive() -> None:
    node = parse('(host = "a" or host = "b") and event_type IN ("x", "y") and agent Contains "q"')
    assert node == And(
        (
            Or((Comparison("host", "=", ("a",)), Comparison("host", "=", ("b",)))),
            Comparison("event_type", "in", ("x", "y")),
            Comparison("agent", "contains", ("q",)),
        )
    )
    assert fields_of(node) == {"host", "event_type", "agent"}


def test_string_escapes_are_decoded() -> None:
    node = parse(r'host = "a\"b\\c\nd\te\u00e9|"')
    assert node == Comparison("host", "=", ('a"b\\c\nd\te\u00e9|',))


def test_every_operator_and_negative_numbers() -> None:
    for op in ("=", "!=", ">", ">=", "<", "<="):
        assert parse(f"severity {op} -2") == Comparison("severity", op, (-2,))
    assert parse('process startswith "py"') == Comparison("process", "startswith", ("py",))


def refused(text: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse(text)
    assert str(info.value).startswith("query: ")
    return info.value


@pytest.mark.parametrize(
    ("text", "rule", "position"),
    [
        ('(host = "a"', "unbalanced parentheses: a ')' is missing", 11),
        ('host = "a")', "unbalanced parentheses: a ')' without its '('", 10),
        (")", "unbalanced parentheses: a ')' without its '('", 0),
        ('hostname = "a"', "unknown field 'hostname'", 0),
        ('host ~ "a"', "unexpected character '~'", 5),
        ('host like "a"', "unknown operator 'like'", 5),
        ('host matches "a"', "unknown operator 'matches'", 5),
        ('host > "a"', "operator '>' does not apply to the text field 'host'", 5),
        ("severity contains 3", "operator 'contains' does not apply to the number field 'severity'", 9),
        ("host = a", "a value (a quoted string or an integer) is expected", 7),
        ('severity = "3"', "field 'severity' takes an integer", 11),
        ("host = 3", "field 'host' takes a quoted string", 7),
        ('host = "abc', "a string is not closed", 7),
        (r'host = "a\q"', "unknown escape \\q", 9),
        (r'host = "\u12"', "\\u must be followed by four hex digits", 8),
        ('host = "a\x00"', "control character U+0000 is not allowed", 9),
        ('host = "a" host = "b"', "AND or OR expected before 'host'", 11),
        ('host = "a" AND', "a comparison (field op value) is expected, the query ends", 14),
        ("severity = 1.5", "a number must be an integer", 11),
        ("severity = 99999999999999999999", "a number must be between", 11),
        ('host in "a"', "'in' must be followed by a list in parentheses", 8),
        ("!host", "'!' must be followed by '='", 0),
    ],
)
def test_bad_input_names_the_rule_and_where(text: str, rule: str, position: int) -> None:
    err = refused(text)
    assert rule in err.rule
    assert err.position == position
    assert f"(at character {position + 1})" in str(err)


def test_too_deep_parentheses_and_nots_are_refused() -> None:
    assert parse("(" * MAX_DEPTH + "pid = 1" + ")" * MAX_DEPTH)
    err = refused("(" * (MAX_DEPTH + 1) + "pid = 1" + ")" * (MAX_DEPTH + 1))
    assert err.rule == f"nested deeper than {MAX_DEPTH} levels"
    err = refused("NOT " * (MAX_DEPTH + 1) + "pid = 1")
    assert err.rule == f"nested deeper than {MAX_DEPTH} levels"
    # far deeper than Python's recursion limit: refused by the rule, not by a RecursionError
    assert refused("(" * 4000 + "pid = 1").rule == f"nested deeper than {MAX_DEPTH} levels"


def test_too_long_and_too_many_are_refused() -> None:
    assert refused("pid = 1 " + " " * MAX_QUERY_CHARS).rule == f"longer than {MAX_QUERY_CHARS} characters"
    assert refused("   ").rule == "must not be empty"
    many = " OR ".join(["pid = 1"] * (MAX_COMPARISONS + 1))
    assert refused(many).rule == f"more than {MAX_COMPARISONS} comparisons"
    big_list = "pid in (" + ", ".join(["1"] * (MAX_IN_VALUES + 1)) + ")"
    assert refused(big_list).rule == f"an 'in' list holds more than {MAX_IN_VALUES} values"
    long_string = 'host = "' + "a" * (MAX_STRING_CHARS + 1) + '"'
    assert refused(long_string).rule == f"a string is longer than {MAX_STRING_CHARS} characters"
