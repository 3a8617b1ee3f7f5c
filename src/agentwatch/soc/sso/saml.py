"""SAML 2.0 Web Browser SSO, SP-initiated: the AuthnRequest (HTTP-Redirect binding) and the
checks of the IdP's response (HTTP-POST binding, or HTTP-Redirect when sent with GET).

Only the XML that the signature verification returns is read (``signxml``'s ``signed_xml``),
so a signed element moved elsewhere in the document (signature wrapping) gives nothing. The
response or its one assertion must be signed with the configured IdP certificate. The input
is bounded in size and refused when it carries a DTD (no entity is ever expanded)."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import SignXMLException

from agentwatch.api.errors import ApiError, InvalidRequest
from agentwatch.soc.sso.oidc import Refused
from agentwatch.soc.sso.settings import SsoSettings

P = "urn:oasis:names:tc:SAML:2.0:protocol"
A = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": P, "saml": A, "ds": DS}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
UNSPECIFIED_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
MAX_TEXT = 1024


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def _instant(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_request_id() -> str:
    return "_" + secrets.token_hex(20)


def authn_request_url(cfg: SsoSettings, request_id: str) -> str:
    """The IdP's SSO URL carrying the deflated, base64-encoded AuthnRequest (HTTP-Redirect binding)."""
    root = etree.Element(f"{{{P}}}AuthnRequest", nsmap={"samlp": P, "saml": A})
    root.set("ID", request_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", _instant(time.time()))
    root.set("Destination", cfg.saml_idp_sso_url or "")
    root.set("AssertionConsumerServiceURL", cfg.saml_acs_url or "")
    root.set("ProtocolBinding", POST_BINDING)
    etree.SubElement(root, f"{{{A}}}Issuer").text = cfg.saml_sp_entity_id
    policy = etree.SubElement(root, f"{{{P}}}NameIDPolicy")
    policy.set("AllowCreate", "true")
    xml = etree.tostring(root)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = packer.compress(xml) + packer.flush()
    query = urlencode({"SAMLRequest": base64.b64encode(deflated).decode()})
    url = cfg.saml_idp_sso_url or ""
    return url + ("&" if urlsplit(url).query else "?") + query


@dataclass(frozen=True)
class Identity:
    in_response_to: str
    assertion_id: str
    expires_at: float
    name_id: str
    attributes: dict[str, list[str]]
    issuer: str


def decode(value: str, cfg: SsoSettings, *, deflated: bool) -> bytes:
    """The XML of a SAMLResponse as sent (base64; deflated too in the HTTP-Redirect binding)."""
    if len(value) > cfg.saml_max_response_bytes:
        raise ApiError(f"SAMLResponse: longer than {cfg.saml_max_response_bytes} bytes", status=413)
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("SAMLResponse: not valid base64") from None
    if deflated and not raw.lstrip().startswith(b"<"):
        unpack = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            raw = unpack.decompress(raw, cfg.saml_max_response_bytes * 4)
        except zlib.error:
            raise InvalidRequest("SAMLResponse: not valid DEFLATE data") from None
        if unpack.unconsumed_tail:
            raise ApiError("SAMLResponse: larger than allowed once inflated", status=413)
    return raw


def _parse(xml: bytes) -> Any:
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise InvalidRequest("SAMLResponse: a DTD or entity declaration is refused")
    try:
        root = etree.fromstring(xml, parser=_parser())
    except etree.XMLSyntaxError:
        raise InvalidRequest("SAMLResponse: not well-formed XML") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise InvalidRequest("SAMLResponse: a DTD or entity declaration is refused")
    if root.tag != f"{{{P}}}Response":
        raise InvalidRequest("SAMLResponse: the document is not a samlp:Response")
    return root


def _verified(xml: bytes, root: Any, cert: str) -> tuple[Any, Any]:
    """(the signed Response or None, the signed Assertion) as returned by the verification."""
    if root.find("saml:EncryptedAssertion", NS) is not None:
        raise Refused("SAMLResponse: encrypted assertions are not supported")
    assertions = root.findall("saml:Assertion", NS)
    if root.find("ds:Signature", NS) is not None:
        location = "./"
    elif len(assertions) == 1 and assertions[0].find("ds:Signature", NS) is not None:
        location = f"./{{{A}}}Assertion/"
    else:
        raise Refused("SAMLResponse: neither the response nor its one assertion is signed")
    config = SignatureConfiguration(location=location, expect_references=1)
    try:
        result = XMLVerifier().verify(xml, x509_cert=cert, parser=_parser(), expect_config=config)
    except (SignXMLException, ValueError):
        raise Refused("SAMLResponse: the signature does not verify with sso.saml_idp_cert") from None
    signed = result.signed_xml  # type: ignore[union-attr]
    # The signature must cover the very element it sits in, named by an ID used once in the
    # document: a signature pointing elsewhere (the signed part moved aside) is refused outright.
    holder = root if location == "./" else assertions[0]
    signed_id = signed.get("ID")
    if not signed_id or signed_id != holder.get("ID") or len(root.xpath("//*[@ID=$i]", i=signed_id)) != 1:
        raise Refused("SAMLResponse: the signature does not cover the element that carries it")
    if signed.tag == f"{{{P}}}Response":
        inner = signed.findall("saml:Assertion", NS)
        if len(inner) != 1:
            raise Refused("SAMLResponse: the signed response must hold exactly one assertion")
        return signed, inner[0]
    if signed.tag == f"{{{A}}}Assertion":
        return None, signed
    raise Refused("SAMLResponse: the signature covers neither the response nor an assertion")


def _time(value: str | None, field: str) -> float:
    if not value or len(value) > 64:
        raise Refused(f"{field}: missing")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(f"{field}: not a date-time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _text(el: Any) -> str:
    return (el.text or "").strip()[:MAX_TEXT] if el is not None else ""


def verify_response(xml: bytes, cfg: SsoSettings, now: float | None = None) -> Identity:
    """Every check of the response, on the signed XML only; raises ``Refused`` or ``InvalidRequest``."""
    now = time.time() if now is None else now
    skew = cfg.clock_skew_s
    root = _parse(xml)
    response, assertion = _verified(xml, root, cfg.saml_idp_cert or "")
    # Status and Destination of an unsigned response can only make us refuse, never accept.
    envelope = response if response is not None else root
    status = envelope.find("samlp:Status/samlp:StatusCode", NS)
    if status is None or status.get("Value") != SUCCESS:
        raise Refused(
            f"Status: the identity provider answered {str(status.get('Value') if status is not None else None)[:128]!r}"
        )
    destination = envelope.get("Destination")
    if destination is not None and destination != cfg.saml_acs_url:
        raise Refused("Destination: not this server's assertion consumer URL (sso.saml_acs_url)")
    if response is not None and destination is None:
        raise Refused("Destination: missing from the signed response")

    issuer = _text(assertion.find("saml:Issuer", NS))
    if cfg.saml_idp_entity_id is not None and issuer != cfg.saml_idp_entity_id:
        raise Refused("Issuer: not the configured identity provider (sso.saml_idp_entity_id)")
    assertion_id = assertion.get("ID") or ""
    if not assertion_id or len(assertion_id) > 256:
        raise Refused("Assertion: no ID")

    conditions = assertion.find("saml:Conditions", NS)
    if conditions is None:
        raise Refused("Conditions: missing")
    not_before = conditions.get("NotBefore")
    if not_before is not None and now + skew < _time(not_before, "Conditions.NotBefore"):
        raise Refused("Conditions.NotBefore: the assertion is not valid yet")
    expires = _time(conditions.get("NotOnOrAfter"), "Conditions.NotOnOrAfter")
    if now - skew >= expires:
        raise Refused("Conditions.NotOnOrAfter: the assertion has expired")
    # each AudienceRestriction is a condition of its own: this server must be in every one of them
    restrictions = conditions.findall("saml:AudienceRestriction", NS)
    if not restrictions or any(
        cfg.saml_sp_entity_id not in [_text(a) for a in r.findall("saml:Audience", NS)] for r in restrictions
    ):
        raise Refused("Audience: the assertion is not meant for this server (sso.saml_sp_entity_id)")

    subject = assertion.find("saml:Subject", NS)
    name_el = subject.find("saml:NameID", NS) if subject is not None else None
    name_id = _text(name_el)
    name_format = name_el.get("Format") if name_el is not None else None
    if cfg.saml_email_attribute is None and name_format not in (None, EMAIL_FORMAT, UNSPECIFIED_FORMAT):
        # a persistent or transient NameID is an opaque id, whatever it looks like: never an e-mail
        raise Refused(
            f"NameID: its Format {name_format[:128]!r} is not an e-mail address"
            " (set sso.saml_email_attribute to read the e-mail from an attribute)"
        )
    confirmation = None
    for sc in subject.findall("saml:SubjectConfirmation", NS) if subject is not None else []:
        if sc.get("Method") == BEARER:
            confirmation = sc.find("saml:SubjectConfirmationData", NS)
            break
    if confirmation is None:
        raise Refused("SubjectConfirmation: no bearer confirmation")
    if confirmation.get("Recipient") != cfg.saml_acs_url:
        raise Refused("SubjectConfirmationData.Recipient: not this server's assertion consumer URL")
    confirm_until = _time(confirmation.get("NotOnOrAfter"), "SubjectConfirmationData.NotOnOrAfter")
    if now - skew >= confirm_until:
        raise Refused("SubjectConfirmationData.NotOnOrAfter: the assertion has expired")
    in_response_to = confirmation.get("InResponseTo") or ""
    if not in_response_to or len(in_response_to) > 256:
        raise Refused("InResponseTo: missing (only sign-ons started here are accepted)")
    outer = envelope.get("InResponseTo")
    if outer is not None and outer != in_response_to:
        raise Refused("InResponseTo: the response and its assertion disagree")

    attributes: dict[str, list[str]] = {}
    for attr in assertion.findall("saml:AttributeStatement/saml:Attribute", NS)[:256]:
        name = (attr.get("Name") or "")[:256]
        attributes.setdefault(name, []).extend(_text(v) for v in attr.findall("saml:AttributeValue", NS)[:1000])
    return Identity(in_response_to, assertion_id, min(expires, confirm_until) + skew, name_id, attributes, issuer)
