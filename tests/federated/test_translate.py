"""Translation into SPL, KQL, ES|QL and the local store's SQL: the exact text for a query, field
maps, time filters, and values that try to break out of their literal (quotes, pipes,
backslashes, line breaks, brackets, backticks, wildcards) staying one literal of that value."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine

from agentwatch.federated.dialect import Window
from agentwatch.federated.fanout import translate
from agentwatch.federated.language import parse
from agentwatch.federated.settings import FederatedSettings, TargetSettings

W = Window(1767225600.0, 1767229200.5)  # 2026-01-01T00:00:00Z .. 01:00:00.5Z
ENGINE = create_engine("sqlite://")
SPLUNK = TargetSettings(name="s", kind="splunk", url="http://127.0.0.1:9", allow_private=True, max_rows=10)
SENTINEL = TargetSettings(name="k", kind="sentinel", workspace="ws-1", table="AgentEvents", max_rows=10)
ELASTIC = TargetSettings(
    name="e", kind="elastic", url="http://127.0.0.1:9", allow_private=True, index="logs-agents*", max_rows=10
)
QUERY = 'event_type = "process.exec" AND (host startswith "build" OR severity >= 7) AND NOT pid in (1, 2)'

ATTACKS = [
    'x" OR 1==1 | delete',
    'x\\" | eval a="',
    "a\nb | search index=* | collect",
    "\\",
    '"',
    "'] or 1==1 //",
    "` | DROP x",
    "\r\n\t",
    "%0A%22",
    "*?%_[]",
    'é"\\n\u2028',
]


def test_spl_exact_text() -> None:
    assert translate(SPLUNK, parse(QUERY), W, ENGINE) == (
        'search index="main" earliest=1767225600 latest=1767229201'
        " | where ('event_type'==\"process.exec\")"
        " AND ((match('host', \"(?i)^build\")) OR ('severity'>=7))"
        " AND (isnull('pid') OR NOT (in('pid', 1, 2))) | head 11"
    )


def test_spl_latest_leaves_out_nothing_up_to_the_windows_end() -> None:
    """Splunk finds earliest <= _time < latest, each a whole second; the window holds its end."""
    for end, latest in ((1767229200.0, 1767229201), (1767229200.5, 1767229201), (1767229200.999, 1767229201)):
        text = translate(SPLUNK, parse(QUERY), Window(1767225600.25, end), ENGINE)
        assert text.startswith(f'search index="main" earliest=1767225600 latest={latest} '), text


def test_kql_exact_text() -> None:
    assert translate(SENTINEL, parse(QUERY), W, ENGINE) == (
        "AgentEvents | where ['TimeGenerated'] between"
        " (datetime(2026-01-01T00:00:00.000000Z) .. datetime(2026-01-01T01:00:00.500000Z))"
        " | where (['event_type'] == \"process.exec\")"
        " and ((['host'] startswith \"build\") or (['severity'] >= long(7)))"
        " and (isempty(['pid']) or not(['pid'] in (long(1), long(2)))) | take 11"
    )


def test_esql_exact_text_with_ecs_defaults() -> None:
    assert translate(ELASTIC, parse(QUERY), W, ENGINE) == (
        'FROM logs-agents* | WHERE `@timestamp` >= TO_DATETIME("2026-01-01T00:00:00.000Z")'
        ' AND `@timestamp` <= TO_DATETIME("2026-01-01T01:00:00.500Z")'
        ' | WHERE (`event.action` == "process.exec")'
        ' AND ((STARTS_WITH(TO_LOWER(`host.name`), "build")) OR (`event.severity` >= 7))'
        " AND (`process.pid` IS NULL OR NOT (`process.pid` IN (1, 2))) | LIMIT 11"
    )


def test_local_text_is_the_stores_sql() -> None:
    text = translate(TargetSettings(name="l", kind="agentwatch_local", max_rows=10), parse(QUERY), W, ENGINE)
    assert text.startswith("SELECT events.ts, events.event_id")
    assert "events.ts >= 1767225600.0 AND events.ts <= 1767229200.5" in text
    assert "events.event_type = 'process.exec'" in text
    assert "(events.pid IS NULL OR (events.pid NOT IN (1, 2)))" in text
    assert "LIMIT 11" in text


def test_field_map_and_time_field_are_per_target() -> None:
    t = SENTINEL.model_copy(update={"field_map": {"host": "Computer", "ts": "TimeStamp"}})
    text = translate(t, parse('host = "a"'), W, ENGINE)
    assert "['TimeStamp'] between" in text and "['Computer'] == \"a\"" in text
    e = ELASTIC.model_copy(update={"field_map": {"host": "observer.hostname"}})
    assert '`observer.hostname` == "a"' in translate(e, parse('host = "a"'), W, ENGINE)
    s = SPLUNK.model_copy(update={"field_map": {"host": "dest_host"}, "index": "agents"})
    text = translate(s, parse('host = "a"'), W, ENGINE)
    assert text.startswith('search index="agents" ') and "'dest_host'==\"a\"" in text


@pytest.mark.parametrize(
    "field_map",
    [{"host": "a'b"}, {"host": "a]b"}, {"host": "a`b"}, {"host": 'a"b'}, {"host": "a b"}, {"hostname": "x"}],
)
def test_field_map_names_that_could_break_a_query_are_refused(field_map: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="field_map"):
        TargetSettings(name="k", kind="sentinel", workspace="w", table="T", field_map=field_map)


# Readers of each dialect's string literal: they take the literal from the start of ``text``
# exactly as the target's parser would, and return its value and the text after it.


def _read_backslashed(text: str, escapes: dict[str, str]) -> tuple[str, str]:
    assert text[0] == '"', text
    out, i = [], 1
    while True:
        ch = text[i]
        assert ch not in "\r\n", "a raw line break inside a literal"
        if ch == '"':
            return "".join(out), text[i + 1 :]
        if ch == "\\":
            out.append(escapes[text[i + 1]])  # KeyError: an escape the dialect does not have
            i += 2
        else:
            out.append(ch)
            i += 1


KQL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def read_kql(text: str) -> tuple[str, str]:
    return _read_backslashed(text, KQL_ESCAPES)


def read_spl(text: str) -> tuple[str, str]:
    if text.startswith("urldecode("):
        literal, rest = _read_backslashed(text[len("urldecode(") :], {})
        assert re.fullmatch(r"[A-Za-z0-9%._~-]*", literal), literal
        assert rest.startswith(")")
        return unquote(literal), rest[1:]
    return _read_backslashed(text, {"\\": "\\", '"': '"'})


def spl_regex_value(regex: str) -> str:
    """The text a regex built by the SPL translator matches: only letters, digits and \\x{..}."""
    assert re.fullmatch(r"(?:[A-Za-z0-9]|\\x\{[0-9a-f]+\})*", regex), regex
    return re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: chr(int(m[1], 16)), regex)


def body(target: TargetSettings, query: str) -> str:
    """The filter part of the translation (after the time filter, before the row cap)."""
    text = translate(target, parse(query), W, ENGINE)
    assert "\n" not in text and "\r" not in text
    if target.kind == "splunk":
        start = text.index(" | where ") + len(" | where ")
    elif target.kind == "sentinel":
        start = text.index("| where ", text.index("between")) + len("| where ")
    else:
        start = text.index("| WHERE ", text.index("TO_DATETIME")) + len("| WHERE ")
    return text[start:]


def q(value: str) -> str:
    """``value`` as a string literal of the federated query language."""
    return (
        '"'
        + value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\u2028", "\\u2028")
        + '"'
    )


@pytest.mark.parametrize("attack", ATTACKS)
def test_spl_values_stay_inside_their_literal(attack: str) -> None:
    text = body(SPLUNK, f'host = {q(attack)} AND agent = "z"')
    assert text.startswith("('host'==")
    value, rest = read_spl(text[len("('host'==") :])
    assert value == attack
    assert rest == ") AND ('agent'==\"z\") | head 11"
    text = body(SPLUNK, f"host contains {q(attack)}")
    assert text.startswith("match('host', ")
    regex, rest = read_spl(text[len("match('host', ") :])
    prefix = "(?i)" if attack.isascii() else "(*UTF)(?i)"  # a value beyond ASCII needs PCRE's UTF mode
    assert regex.startswith(prefix) and spl_regex_value(regex[len(prefix) :]) == attack
    assert rest == ") | head 11"
    text = body(SPLUNK, f'host in ({q(attack)}, "b")')
    value, rest = read_spl(text[len("in('host', ") :])
    assert value == attack and rest == ', "b") | head 11'


@pytest.mark.parametrize("attack", ATTACKS)
def test_kql_values_stay_inside_their_literal(attack: str) -> None:
    for op in ("==", "contains", "startswith"):
        word = "=" if op == "==" else op
        text = body(SENTINEL, f'host {word} {q(attack)} AND agent = "z"')
        head = f"(['host'] {op} "
        assert text.startswith(head), text
        value, rest = read_kql(text[len(head) :])
        assert value == attack
        assert rest == ") and (['agent'] == \"z\") | take 11"


@pytest.mark.parametrize("attack", ATTACKS)
def test_esql_values_stay_inside_their_literal(attack: str) -> None:
    text = body(ELASTIC, f'host = {q(attack)} AND agent = "z"')
    value, rest = read_kql(text[len("(`host.name` == ") :])
    assert value == attack and rest == ') AND (`agent.name` == "z") | LIMIT 11'
    text = body(ELASTIC, f"host contains {q(attack)}")
    head = "LOCATE(TO_LOWER(`host.name`), "
    assert text.startswith(head)
    value, rest = read_kql(text[len(head) :])
    assert value == attack.lower() and rest == ") > 0 | LIMIT 11"


def test_targets_settings_refuse_what_does_not_fit_their_kind() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        TargetSettings(name="s", kind="splunk", url="http://127.0.0.1:8089")
    with pytest.raises(ValidationError, match="url is required"):
        TargetSettings(name="s", kind="splunk")
    with pytest.raises(ValidationError, match="workspace and table are required"):
        TargetSettings(name="k", kind="sentinel")
    with pytest.raises(ValidationError, match="index is required"):
        TargetSettings(name="e", kind="elastic", url="https://es.example.com")
    with pytest.raises(ValidationError, match="index"):
        TargetSettings(name="s", kind="splunk", url="https://splunk.example.com", index='main" | delete')
    with pytest.raises(ValidationError, match="credential_env"):
        TargetSettings(name="e", kind="elastic", url="https://es.example.com", index="x", credential_env="A B")
    with pytest.raises(ValidationError, match="do not apply"):
        TargetSettings(name="l", kind="agentwatch_local", field_map={"host": "h"})
    with pytest.raises(ValidationError, match="unique"):
        FederatedSettings(targets=[{"name": "a", "kind": "agentwatch_local"}] * 2)
