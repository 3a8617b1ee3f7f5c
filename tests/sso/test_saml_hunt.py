"""Defects found by reviewing SAML sign-on, checked on the response verification itself."""

from __future__ import annotations

import pytest
from lxml import etree

from agentwatch.soc.sso import saml
from agentwatch.soc.sso.oidc import Refused
from agentwatch.soc.sso.settings import SsoSettings
from tests.sso.saml_idp import ACS, IDP_ENTITY, SP_ENTITY, A, SamlIdp, make_keypair

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


@pytest.fixture(scope="module")
def idp() -> SamlIdp:
    return SamlIdp(*make_keypair())


def settings(idp: SamlIdp, **extra: object) -> SsoSettings:
    return SsoSettings(
        saml_enabled=True,
        saml_idp_entity_id=IDP_ENTITY,
        saml_idp_sso_url="https://idp.example.test/sso",
        saml_idp_cert=idp.cert.decode(),
        saml_sp_entity_id=SP_ENTITY,
        saml_acs_url=ACS,
        **extra,
    )


def with_format(idp: SamlIdp, fmt: str | None) -> bytes:
    a = idp.assertion("_req", email="boss@example.com")
    if fmt is not None:
        a.find(f"{{{A}}}Subject/{{{A}}}NameID").set("Format", fmt)
    return etree.tostring(idp.response("_req", assertion=a))


@pytest.mark.parametrize("fmt", [PERSISTENT, TRANSIENT])
def test_a_nameid_that_is_not_an_email_format_is_not_taken_for_an_email(idp: SamlIdp, fmt: str) -> None:
    with pytest.raises(Refused, match="NameID: .*sso.saml_email_attribute"):
        saml.verify_response(with_format(idp, fmt), settings(idp))
    # read from an attribute instead, the NameID's format does not matter
    assert saml.verify_response(with_format(idp, fmt), settings(idp, saml_email_attribute="mail")).name_id


@pytest.mark.parametrize(
    "fmt",
    [
        None,
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ],
)
def test_an_email_or_unspecified_nameid_is_the_email(idp: SamlIdp, fmt: str | None) -> None:
    assert saml.verify_response(with_format(idp, fmt), settings(idp)).name_id == "boss@example.com"


def test_every_audience_restriction_must_name_this_server(idp: SamlIdp) -> None:
    # two AudienceRestriction elements are two conditions, each to be met (SAML core 2.5.1.4):
    # an assertion restricted to another party as well is not for this server
    a = idp.assertion("_req")
    conditions = a.find(f"{{{A}}}Conditions")
    other = etree.SubElement(conditions, f"{{{A}}}AudienceRestriction")
    etree.SubElement(other, f"{{{A}}}Audience").text = "https://another-sp.example.test"
    xml = etree.tostring(idp.response("_req", assertion=a))
    with pytest.raises(Refused, match="Audience"):
        saml.verify_response(xml, settings(idp))
