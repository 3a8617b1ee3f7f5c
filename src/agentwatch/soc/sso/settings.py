"""Settings of single sign-on (``[sso]`` in the config file, ``AGENTWATCH_SSO__*``): an OpenID
Connect provider and a SAML 2.0 identity provider, each off until switched on."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator

# Roles no sign-on may hand out by itself (a mapped or provisioned role holding any of these is refused).
FORBIDDEN_PERMISSIONS = frozenset({"admin", "users:admin"})


def _http_url(v: str | None, *, resolve_guard: bool, allow_private: bool) -> str | None:
    if v is None:
        return None
    from agentwatch.net.ssrf import SSRFError, UnresolvedHost, check_url

    try:
        check_url(v, allow_private=allow_private, resolve=resolve_guard)
    except UnresolvedHost:
        pass  # not resolvable now: the addresses are checked again at connect time
    except SSRFError as exc:
        hint = "" if allow_private else " (set sso.allow_private to reach an identity provider on this host or network)"
        raise ValueError(str(exc).removeprefix("url: ") + hint) from None
    if urlsplit(v).fragment:
        raise ValueError("must not carry a fragment")
    return v


def _secure_origin(url: str) -> bool:
    """Whether a browser treats pages at ``url`` as a secure origin (it keeps and sends
    ``Secure`` cookies there): https, or http to localhost or a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SsoSettings(BaseModel):
    oidc_enabled: bool = Field(False, description="sign in with an OpenID Connect provider (off: routes answer 404)")
    saml_enabled: bool = Field(
        False, description="sign in with a SAML 2.0 identity provider (off: its routes answer 404)"
    )
    allow_private: bool = Field(
        False, description="let the OIDC issuer and its endpoints be loopback or private addresses (SSRF guard)"
    )
    issuer: str | None = Field(
        None,
        max_length=2048,
        validate_default=True,
        description="the OIDC issuer URL; its metadata is read from <issuer>/.well-known/openid-configuration",
    )
    client_id: str | None = Field(None, min_length=1, max_length=512, description="the OIDC client id")
    client_secret: SecretStr | None = Field(None, description="the OIDC client secret; never logged")
    redirect_uri: str | None = Field(
        None, max_length=2048, description="the redirect URI registered at the provider (where the callback is served)"
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        min_length=1,
        max_length=32,
        description="the OIDC scopes asked for ('openid' is required)",
    )
    groups_claim: str = Field(
        "groups", min_length=1, max_length=128, description="the ID token claim (or SAML attribute) listing groups"
    )
    auto_provision: bool = Field(
        False, description="create an account for a verified e-mail that has none (with default_role)"
    )
    default_role: str = Field(
        "viewer", min_length=1, max_length=64, description="role of an account created by sign-on (never admin)"
    )
    group_roles: dict[str, str] = Field(
        default_factory=dict,
        max_length=256,
        description="group -> role, applied when sign-on creates an account and at every sign-on after (the first"
        " listed group the user is in wins; in none: default_role); accounts holding an admin role are left alone",
    )
    link_existing_admins: bool = Field(
        False,
        description="let sign-on enter an account with an admin role that sign-on did not create (a password"
        " account); off: such a sign-on is refused (403)",
    )
    timeout_s: float = Field(10.0, gt=0, le=60, description="longest wait for one call to the identity provider")
    max_response_bytes: int = Field(
        256 * 1024, ge=4096, le=4 * 1024 * 1024, description="largest answer read from the identity provider"
    )
    metadata_ttl_s: float = Field(
        3600.0, ge=0, le=86_400, description="how long the provider metadata and keys are cached"
    )
    jwks_refetch_s: float = Field(
        30.0, ge=0, le=3600, description="least time between two JWKS fetches caused by an unknown key id"
    )
    request_ttl_s: int = Field(600, ge=30, le=3600, description="how long a started sign-on may take to come back")
    max_pending: int = Field(10_000, ge=10, le=1_000_000, description="most sign-ons started and not yet completed")
    max_pending_per_address: int = Field(
        100, ge=1, le=1_000_000, description="most sign-ons started from one client address and not yet completed"
    )
    clock_skew_s: int = Field(60, ge=0, le=600, description="clock difference tolerated in token and assertion times")
    saml_idp_entity_id: str | None = Field(None, max_length=2048, description="the IdP's entity id (Issuer)")
    saml_idp_sso_url: str | None = Field(
        None, max_length=2048, description="the IdP's SSO URL for the HTTP-Redirect binding (where the browser goes)"
    )
    saml_idp_cert: str | None = Field(
        None, max_length=65_536, description="the IdP's signing certificate, PEM (responses must be signed with it)"
    )
    saml_sp_entity_id: str | None = Field(None, max_length=2048, description="our entity id (the expected Audience)")
    saml_acs_url: str | None = Field(
        None, max_length=2048, description="our assertion consumer URL (the expected Destination and Recipient)"
    )
    saml_email_attribute: str | None = Field(
        None, max_length=256, description="attribute holding the e-mail; unset: the NameID is the e-mail"
    )
    saml_max_response_bytes: int = Field(
        256 * 1024, ge=4096, le=4 * 1024 * 1024, description="largest SAMLResponse accepted (as sent, base64)"
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_passes_the_ssrf_guard(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        _http_url(v, resolve_guard=True, allow_private=bool(info.data.get("allow_private", False)))
        if urlsplit(v).query:
            raise ValueError("must not carry a query")
        return v  # kept as given: the provider's issuer is compared exactly (some end with '/')

    @field_validator("redirect_uri", "saml_idp_sso_url", "saml_acs_url")
    @classmethod
    def _browser_url(cls, v: str | None) -> str | None:
        # visited by the browser, never fetched by the server: only the form is checked
        if v is None:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.fragment:
            raise ValueError("must not carry a fragment")
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or len(s) > 128 or not all(33 <= ord(c) < 127 and c not in '"\\' for c in s):
                raise ValueError(f"scope {s[:32]!r}: must be 1-128 printable characters without spaces or quotes")
        if "openid" not in v:
            raise ValueError("must include 'openid'")
        return v

    @field_validator("default_role")
    @classmethod
    def _not_admin(cls, v: str) -> str:
        if v == "admin":
            raise ValueError("must not be 'admin' (sign-on never creates an admin)")
        return v

    @field_validator("group_roles")
    @classmethod
    def _no_admin_mapping(cls, v: dict[str, str]) -> dict[str, str]:
        for group, role in v.items():
            if not group or len(group) > 256:
                raise ValueError("a group name must be 1-256 characters")
            if not role or len(role) > 64:
                raise ValueError(f"{group!r}: the role must be 1-64 characters")
            if role == "admin":
                raise ValueError(f"{group!r}: must not map to 'admin' (sign-on never grants admin)")
        return v

    @field_validator("saml_idp_cert")
    @classmethod
    def _pem(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from cryptography import x509

        try:
            x509.load_pem_x509_certificate(v.encode())
        except ValueError:
            raise ValueError("must be one X.509 certificate in PEM form") from None
        return v

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SsoSettings:
        if self.oidc_enabled:
            for name in ("issuer", "client_id", "client_secret", "redirect_uri"):
                if getattr(self, name) is None:
                    raise ValueError(f"sso.{name}: required when sso.oidc_enabled is true")
        if self.saml_enabled:
            for name in ("saml_idp_sso_url", "saml_idp_cert", "saml_sp_entity_id", "saml_acs_url"):
                if getattr(self, name) is None:
                    raise ValueError(f"sso.{name}: required when sso.saml_enabled is true")
            if not _secure_origin(self.saml_acs_url or ""):
                # The IdP's POST to it is cross-site: only a SameSite=None cookie comes along, and
                # a browser keeps such a cookie only when it is Secure, sent over https (or to
                # the browser's own machine). Over plain http every SAML sign-on would fail.
                raise ValueError(
                    "sso.saml_acs_url: must be an https URL when sso.saml_enabled is true "
                    "(http only for localhost or a loopback address)"
                )
        return self
