"""Indicator kinds, canonical forms and the in-memory index (pure functions, no store)."""

from __future__ import annotations

import pytest

from agentwatch.intel.index import IocIndex
from agentwatch.intel.indicators import BadIndicator, classify, normalize, parent_domains
from agentwatch.intel.store import Indicator


@pytest.mark.parametrize(
    ("kind", "given", "canonical"),
    [
        ("ip", " 203.0.113.7 ", "203.0.113.7"),
        ("ip", "2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("cidr", "203.0.113.77/24", "203.0.113.0/24"),  # host bits cleared
        ("domain", "Evil.Example.", "evil.example"),
        ("domain", "b\u00fccher.example", "xn--bcher-kva.example"),  # IDNA
        ("url", "HTTPS://Evil.Example:8443/a/B?x=1", "https://evil.example:8443/a/B?x=1"),
        ("url", "http://evil.example", "http://evil.example/"),
        ("url", "http://[2001:DB8::1]/x", "http://[2001:db8::1]/x"),
        ("sha256", "A" * 64, "a" * 64),
        ("md5", "0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("email", "Mallory@Evil.Example", "mallory@evil.example"),
    ],
)
def test_values_take_one_canonical_form(kind: str, given: str, canonical: str) -> None:
    assert normalize(kind, given) == canonical


@pytest.mark.parametrize(
    ("kind", "given", "rule"),
    [
        ("ip", "300.1.1.1", "IPv4 or IPv6 address"),
        ("cidr", "10.0.0.0/4", "wider than /8"),
        ("cidr", "2001:db8::/8", "wider than /16"),
        ("domain", "localhost", "at least two labels"),
        ("domain", "bad_label-.example", "letters, digits"),
        ("domain", "1.2.3.4", "not an address"),
        ("domain", "a" * 64 + ".example", "letters, digits"),
        ("url", "javascript:alert(1)", "http(s) or ftp URL"),
        ("url", "http://", "http(s) or ftp URL"),
        ("sha1", "abc", "40 hexadecimal digits"),
        ("sha256", "z" * 64, "64 hexadecimal digits"),
        ("email", "no-at-sign", "e-mail address"),
        ("ip", "", "non-empty"),
        ("domain", "evil\x00.example", "control characters"),
        ("domain", "x" * 3000, "longer than 2048"),
        ("planet", "mars", "unknown kind"),
    ],
)
def test_bad_values_say_which_rule_they_break(kind: str, given: str, rule: str) -> None:
    with pytest.raises(BadIndicator, match=rule.replace("(", r"\(").replace(")", r"\)")):
        normalize(kind, given)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("203.0.113.7", "ip"),
        ("::1", "ip"),
        ("203.0.113.0/24", "cidr"),
        ("https://evil.example/x", "url"),
        ("m@evil.example", "email"),
        ("d41d8cd98f00b204e9800998ecf8427e", "md5"),
        ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1"),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256"),
        ("evil.example", "domain"),
    ],
)
def test_bare_values_are_classified(value: str, kind: str) -> None:
    assert classify(value) == kind


def test_a_word_is_no_indicator() -> None:
    with pytest.raises(BadIndicator):
        classify("hello")


def test_parent_domains_stop_above_the_top_level() -> None:
    assert parent_domains("a.b.evil.example") == ["a.b.evil.example", "b.evil.example", "evil.example"]


def _ind(kind: str, value: str) -> Indicator:
    return Indicator(kind, value, id=f"{kind}:{value}")


def test_the_index_finds_addresses_in_networks_and_names_below_listed_domains() -> None:
    index = IocIndex.of(
        [
            _ind("cidr", "203.0.113.0/24"),
            _ind("cidr", "2001:db8:abcd::/48"),
            _ind("ip", "198.51.100.5"),
            _ind("domain", "evil.example"),
            _ind("sha256", "a" * 64),
        ]
    )
    assert [i.value for i in index.address("203.0.113.200")] == ["203.0.113.0/24"]
    assert index.address("203.0.114.1") == []
    assert [i.value for i in index.address("2001:db8:abcd:1::9")] == ["2001:db8:abcd::/48"]
    assert [i.value for i in index.address("198.51.100.5")] == ["198.51.100.5"]
    assert [i.value for i in index.domain("cdn.Evil.Example")] == ["evil.example"]
    assert index.domain("notevil.example") == []  # a suffix of the text, not a name above it
    assert [i.value for i in index.value("sha256", "a" * 64)] == ["a" * 64]
    assert len(index) == 5


def test_the_index_drops_an_indicator_by_id_and_keeps_one_put_since_under_a_new_id() -> None:
    index = IocIndex.of([Indicator("domain", "gone.example", id="a"), Indicator("cidr", "198.18.0.0/15", id="n")])
    index.put(Indicator("domain", "gone.example", id="b"))  # deleted and added again: a new id
    index.drop_id("a")
    assert [i.id for i in index.domain("gone.example")] == ["b"]
    index.drop_id("b")
    assert index.domain("gone.example") == []
    index.drop_id("n")
    assert index.address("198.18.1.1") == [] and len(index) == 0 and index.ids == {}
    index.drop_id("never-held")
