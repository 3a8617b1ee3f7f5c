"""Indicators of compromise: their kinds, and each value in the one form it is stored and matched in.

Kinds: ``ip`` (one address), ``cidr`` (a network), ``domain`` (matches itself and every
name below it), ``url``, ``md5``, ``sha1``, ``sha256`` and ``email``. :func:`normalize`
validates a value of a kind and returns its canonical form (lower case, compressed IPv6
without a zone, an IPv4-mapped IPv6 address as IPv4, IDNA for international domain names, no
trailing dot, no default port in a URL), so the same indicator given twice in two spellings is
one indicator. :func:`classify` guesses the kind of a bare value (the enrich
route, and ingest items without a ``type``).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

KINDS = ("ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email")
HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}
MAX_VALUE = 2048
MAX_DOMAIN = 253
LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
HEX_RE = re.compile(r"[0-9a-f]+")
EMAIL_LOCAL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}")
# Networks wider than these would make one indicator match a large part of the internet.
MIN_PREFIX = {4: 8, 6: 16}
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}  # a URL naming its scheme's port is the URL without it


class BadIndicator(ValueError):
    """A value that is not an indicator of its kind; the message says which rule it breaks."""


def _domain(value: str) -> str:
    text = value.strip().rstrip(".").lower()
    if not text:
        raise BadIndicator("must be a domain name")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadIndicator("must be a domain name (its international form cannot be encoded)") from None
    if len(text) > MAX_DOMAIN:
        raise BadIndicator(f"domain longer than {MAX_DOMAIN} characters")
    labels = text.split(".")
    if len(labels) < 2 or not all(LABEL_RE.fullmatch(label) for label in labels):
        raise BadIndicator("must be a domain name with at least two labels of letters, digits, - or _")
    if labels[-1].isdigit():
        raise BadIndicator("must be a domain name, not an address")
    return text


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The host an address names: an IPv6 zone (``%eth0``, the local interface it was seen on)
    dropped, and an IPv4 address written as IPv6 (``::ffff:203.0.113.5``) as that IPv4 address."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.scope_id is not None:
            return ipaddress.IPv6Address(int(addr))
    return addr


def _ip(value: str) -> str:
    try:
        return str(_address(value.strip()))
    except ValueError:
        raise BadIndicator("must be an IPv4 or IPv6 address") from None


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise BadIndicator("must be an IPv4 or IPv6 network such as 203.0.113.0/24") from None
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise BadIndicator(f"networks wider than /{MIN_PREFIX[net.version]} are refused for IPv{net.version}")
    if isinstance(net, ipaddress.IPv6Network):  # without its zone
        net = ipaddress.IPv6Network((int(net.network_address), net.prefixlen))
    return str(net)


def _hash(kind: str, value: str) -> str:
    text = value.strip().lower()
    want = {v: k for k, v in HASH_LENGTHS.items()}[kind]
    if len(text) != want or not HEX_RE.fullmatch(text):
        raise BadIndicator(f"must be {want} hexadecimal digits")
    return text


def _url(value: str) -> str:
    text = value.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise BadIndicator("must be an absolute http(s) or ftp URL") from None
    if parts.scheme.lower() not in ("http", "https", "ftp") or not host:
        raise BadIndicator("must be an absolute http(s) or ftp URL")
    try:
        host = str(_address(host))
        shown = f"[{host}]" if ":" in host else host
    except ValueError:
        shown = host = _domain(host)
    scheme = parts.scheme.lower()
    netloc = shown if port is None or port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def _email(value: str) -> str:
    local, sep, domain = value.strip().rpartition("@")
    if not sep or not EMAIL_LOCAL_RE.fullmatch(local):
        raise BadIndicator("must be an e-mail address")
    return f"{local.lower()}@{_domain(domain)}"


def normalize(kind: str, value: str) -> str:
    """``value`` in its canonical form as an indicator of ``kind``; raises :class:`BadIndicator`."""
    if not isinstance(value, str) or not value.strip():
        raise BadIndicator("must be a non-empty string")
    if len(value) > MAX_VALUE:
        raise BadIndicator(f"longer than {MAX_VALUE} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise BadIndicator("must not contain control characters")
    if kind == "ip":
        return _ip(value)
    if kind == "cidr":
        return _cidr(value)
    if kind == "domain":
        return _domain(value)
    if kind == "url":
        return _url(value)
    if kind == "email":
        return _email(value)
    if kind in HASH_LENGTHS.values():
        return _hash(kind, value)
    raise BadIndicator(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")


def classify(value: str) -> str:
    """The kind a bare value is written in; raises :class:`BadIndicator` when none fits."""
    text = value.strip() if isinstance(value, str) else ""
    if "://" in text:
        return "url"
    if "/" in text:
        return "cidr"
    if "@" in text:
        return "email"
    try:
        ipaddress.ip_address(text)
        return "ip"
    except ValueError:
        pass
    if HEX_RE.fullmatch(text.lower()) and len(text) in HASH_LENGTHS:
        return HASH_LENGTHS[len(text)]
    if "." in text:
        return "domain"
    raise BadIndicator("is not an address, network, domain, URL, hash or e-mail address")


def parent_domains(name: str) -> list[str]:
    """``a.b.example.com`` -> itself and each name above it with two labels or more."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]
