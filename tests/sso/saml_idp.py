"""A test SAML identity provider: a key and self-signed certificate made at test time, and
responses built and signed (``signxml``) as an IdP would send them to our assertion consumer."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner

P = "urn:oasis:names:tc:SAML:2.0:protocol"
A = "urn:oasis:names:tc:SAML:2.0:assertion"
IDP_ENTITY = "https://idp.example.test/saml"
SP_ENTITY = "https://agentwatch.example.test/sp"
ACS = "http://127.0.0.1/api/v1/auth/saml/callback"


def _instant(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_keypair(cn: str = "test idp") -> tuple[bytes, bytes]:
    """(private key PEM, self-signed certificate PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _signer() -> XMLSigner:
    return XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )


@dataclass
class SamlIdp:
    key: bytes
    cert: bytes
    defaults: dict[str, Any] = field(default_factory=dict)

    def assertion(self, request_id: str, **kw: Any) -> Any:
        now = time.time()
        o = {
            "email": "alice@example.com",
            "audience": SP_ENTITY,
            "recipient": ACS,
            "issuer": IDP_ENTITY,
            "not_before": now - 30,
            "not_after": now + 300,
            "id": "_a" + uuid.uuid4().hex,
            "groups": [],
            **kw,
        }
        a = etree.Element(f"{{{A}}}Assertion", nsmap={"saml": A})
        a.set("ID", o["id"])
        a.set("Version", "2.0")
        a.set("IssueInstant", _instant(now))
        etree.SubElement(a, f"{{{A}}}Issuer").text = o["issuer"]
        subject = etree.SubElement(a, f"{{{A}}}Subject")
        etree.SubElement(subject, f"{{{A}}}NameID").text = o["email"]
        sc = etree.SubElement(subject, f"{{{A}}}SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
        scd = etree.SubElement(sc, f"{{{A}}}SubjectConfirmationData")
        scd.set("InResponseTo", request_id)
        scd.set("Recipient", o["recipient"])
        scd.set("NotOnOrAfter", _instant(o["not_after"]))
        cond = etree.SubElement(a, f"{{{A}}}Conditions")
        cond.set("NotBefore", _instant(o["not_before"]))
        cond.set("NotOnOrAfter", _instant(o["not_after"]))
        ar = etree.SubElement(cond, f"{{{A}}}AudienceRestriction")
        etree.SubElement(ar, f"{{{A}}}Audience").text = o["audience"]
        if o["groups"]:
            stmt = etree.SubElement(a, f"{{{A}}}AttributeStatement")
            attr = etree.SubElement(stmt, f"{{{A}}}Attribute", Name="groups")
            for g in o["groups"]:
                etree.SubElement(attr, f"{{{A}}}AttributeValue").text = g
        return a

    def sign(self, element: Any) -> Any:
        return _signer().sign(
            element, key=self.key, cert=self.cert.decode(), reference_uri="#" + element.get("ID"), id_attribute="ID"
        )

    def response(
        self, request_id: str, *, sign: str = "assertion", destination: str = ACS, assertion: Any = None, **kw: Any
    ) -> Any:
        """A Response element; ``sign`` is 'assertion', 'response' or 'none'."""
        a = assertion if assertion is not None else self.assertion(request_id, **kw)
        if sign == "assertion":
            a = self.sign(a)
        r = etree.Element(f"{{{P}}}Response", nsmap={"samlp": P, "saml": A})
        r.set("ID", "_r" + uuid.uuid4().hex)
        r.set("Version", "2.0")
        r.set("IssueInstant", _instant(time.time()))
        r.set("Destination", destination)
        r.set("InResponseTo", request_id)
        etree.SubElement(r, f"{{{A}}}Issuer").text = IDP_ENTITY
        status = etree.SubElement(r, f"{{{P}}}Status")
        etree.SubElement(status, f"{{{P}}}StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success")
        r.append(a)
        if sign == "response":
            r = self.sign(r)
        return r


def encode(element: Any) -> str:
    return base64.b64encode(etree.tostring(element)).decode()
