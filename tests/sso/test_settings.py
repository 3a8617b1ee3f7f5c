"""The ``[sso]`` settings refuse what would be unsafe or incomplete, naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentwatch.config import Settings
from agentwatch.soc.sso.settings import SsoSettings
from tests.sso.saml_idp import make_keypair

OIDC = {
    "oidc_enabled": True,
    "issuer": "https://idp.example.com",
    "client_id": "c",
    "client_secret": "s",
    "redirect_uri": "https://app.example.com/sso",
}


def test_sign_on_is_off_by_default() -> None:
    s = Settings().sso
    assert not s.oidc_enabled and not s.saml_enabled and not s.auto_provision and not s.allow_private
    assert not s.link_existing_admins  # sign-on into a password admin account is refused unless switched on


def test_a_loopback_issuer_is_refused_unless_allow_private() -> None:
    with pytest.raises(ValidationError, match="loopback.*sso.allow_private"):
        SsoSettings(**{**OIDC, "issuer": "http://127.0.0.1:9999"})
    # kept exactly as given: an issuer is compared character for character, a final '/' included
    assert SsoSettings(**{**OIDC, "issuer": "http://127.0.0.1:9999/", "allow_private": True}).issuer == (
        "http://127.0.0.1:9999/"
    )


def test_a_metadata_address_is_refused_even_with_allow_private() -> None:
    with pytest.raises(ValidationError, match="metadata"):
        SsoSettings(**{**OIDC, "issuer": "http://169.254.169.254", "allow_private": True})


def test_an_issuer_with_credentials_or_another_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="credentials"):
        SsoSettings(**{**OIDC, "issuer": "https://u:p@idp.example.com"})
    with pytest.raises(ValidationError, match="scheme"):
        SsoSettings(**{**OIDC, "issuer": "ftp://idp.example.com"})


@pytest.mark.parametrize("missing", ["issuer", "client_id", "client_secret", "redirect_uri"])
def test_oidc_needs_its_settings_when_enabled(missing: str) -> None:
    with pytest.raises(ValidationError, match=f"sso.{missing}: required when sso.oidc_enabled"):
        SsoSettings(**{**OIDC, missing: None})


def test_saml_needs_its_settings_when_enabled() -> None:
    with pytest.raises(ValidationError, match="sso.saml_idp_sso_url: required"):
        SsoSettings(saml_enabled=True)


@pytest.fixture(scope="module")
def saml_cert() -> str:
    return make_keypair()[1].decode()


SAML = {
    "saml_enabled": True,
    "saml_idp_sso_url": "https://idp.example.com/sso",
    "saml_sp_entity_id": "agentwatch",
}


@pytest.mark.parametrize(
    "acs",
    ["http://app.example.com/api/v1/auth/saml/callback", "http://10.0.0.5/api/v1/auth/saml/callback"],
)
def test_saml_over_plain_http_is_refused_at_start_naming_the_setting(acs: str, saml_cert: str) -> None:
    # the sign-on cookie is SameSite=None; Secure: a browser would never send it back over http
    with pytest.raises(ValidationError, match="sso.saml_acs_url: must be an https URL"):
        SsoSettings(**SAML, saml_idp_cert=saml_cert, saml_acs_url=acs)


@pytest.mark.parametrize(
    "acs",
    [
        "https://app.example.com/api/v1/auth/saml/callback",
        "http://localhost:7777/api/v1/auth/saml/callback",
        "http://127.0.0.1:7777/api/v1/auth/saml/callback",
        "http://[::1]:7777/api/v1/auth/saml/callback",
    ],
)
def test_saml_takes_https_or_the_browsers_own_machine(acs: str, saml_cert: str) -> None:
    assert SsoSettings(**SAML, saml_idp_cert=saml_cert, saml_acs_url=acs).saml_acs_url == acs


def test_an_http_acs_url_is_fine_while_saml_is_off() -> None:
    assert SsoSettings(saml_acs_url="http://app.example.com/cb").saml_acs_url == "http://app.example.com/cb"


def test_admin_is_never_the_default_or_a_mapped_role() -> None:
    with pytest.raises(ValidationError, match="never creates an admin"):
        SsoSettings(default_role="admin")
    with pytest.raises(ValidationError, match="never grants admin"):
        SsoSettings(group_roles={"ops": "admin"})


def test_scopes_must_include_openid_and_be_tokens() -> None:
    with pytest.raises(ValidationError, match="openid"):
        SsoSettings(scopes=["email"])
    with pytest.raises(ValidationError, match="without spaces"):
        SsoSettings(scopes=["openid", "a b"])


def test_the_idp_certificate_must_be_pem() -> None:
    with pytest.raises(ValidationError, match="PEM"):
        SsoSettings(saml_idp_cert="not a certificate")


def test_the_client_secret_is_never_shown() -> None:
    s = Settings(sso=OIDC)
    assert "s" not in str(s.masked()["sso"]["client_secret"]).strip("*")
    assert "client_secret=SecretStr" in repr(s.sso) or "**" in repr(s.sso)
