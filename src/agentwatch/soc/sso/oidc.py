"""OpenID Connect, authorization code flow with PKCE (S256): the provider's metadata and keys
(cached), the authorization URL, the code exchange and the ID token's verification.

The ID token is trusted only when signed with RS256 or ES256 by a key of the provider's JWKS
whose type matches the algorithm (so never ``none``, never HMAC keyed with a public key), and
when its issuer, audience, expiry, issue time and nonce are right."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

from agentwatch.api.errors import ApiError
from agentwatch.soc.sso.fetch import IdpError, call_json
from agentwatch.soc.sso.settings import SsoSettings

ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}
MAX_ID_TOKEN_CHARS = 16_384
MAX_KEYS = 100


def pkce_pair() -> tuple[str, str]:
    """(code verifier, its S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Refused(ApiError):
    """The sign-on itself is not acceptable (answered 401, audited as a failed login)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=401, code="UNAUTHORIZED")


@dataclass
class Metadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: list[str]
    fetched_at: float


class OidcClient:
    """One configured provider; its metadata and JWKS are cached for the server's lifetime."""

    def __init__(self, cfg: SsoSettings) -> None:
        self.cfg = cfg
        self._meta: Metadata | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._keys_at = float("-inf")
        self._lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()  # one JWKS fetch at a time: sign-ins arriving together share it

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        return await call_json(
            "GET",
            url,
            what,
            allow_private=self.cfg.allow_private,
            timeout_s=self.cfg.timeout_s,
            max_bytes=self.cfg.max_response_bytes,
        )

    async def metadata(self) -> Metadata:
        cached = self._meta
        if cached is not None and time.monotonic() - cached.fetched_at < self.cfg.metadata_ttl_s:
            return cached
        async with self._lock:
            cached = self._meta  # another request may have fetched it meanwhile
            if cached is not None and time.monotonic() - cached.fetched_at < self.cfg.metadata_ttl_s:
                return cached
            issuer = self.cfg.issuer or ""
            doc = await self._get(issuer.rstrip("/") + "/.well-known/openid-configuration", "sso.issuer")
            if doc.get("issuer") != issuer:
                named = str(doc.get("issuer"))[:256]
                raise IdpError(
                    f"sso.issuer: the provider's metadata names another issuer ({named!r}; they must be equal exactly)"
                )
            urls = {}
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                value = doc.get(name)
                if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") or len(value) > 2048:
                    raise IdpError(f"sso.issuer: the provider's metadata lacks a valid {name}")
                urls[name] = value
            methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            self._meta = Metadata(
                **urls,
                token_auth_methods=[m for m in methods if isinstance(m, str)] if isinstance(methods, list) else [],
                fetched_at=time.monotonic(),
            )
            return self._meta

    def authorization_url(self, meta: Metadata, state: str, nonce: str, challenge: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.cfg.client_id or "",
            "redirect_uri": self.cfg.redirect_uri or "",
            "scope": " ".join(self.cfg.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        sep = "&" if urlsplit(meta.authorization_endpoint).query else "?"
        return meta.authorization_endpoint + sep + urlencode(query)

    async def exchange(self, code: str, verifier: str) -> str:
        """The ID token the token endpoint gives for ``code``."""
        meta = await self.metadata()
        secret = self.cfg.client_secret.get_secret_value() if self.cfg.client_secret else ""
        client_id = self.cfg.client_id or ""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.cfg.redirect_uri or "",
            "code_verifier": verifier,
        }
        auth: tuple[str, str] | None = (client_id, secret)
        if "client_secret_basic" not in meta.token_auth_methods and "client_secret_post" in meta.token_auth_methods:
            data.update(client_id=client_id, client_secret=secret)
            auth = None
        doc = await call_json(
            "POST",
            meta.token_endpoint,
            "sso.token_endpoint",
            allow_private=self.cfg.allow_private,
            timeout_s=self.cfg.timeout_s,
            max_bytes=self.cfg.max_response_bytes,
            data=data,
            auth=auth,
        )
        token = doc.get("id_token")
        if not isinstance(token, str) or not token or len(token) > MAX_ID_TOKEN_CHARS:
            raise Refused("id_token: missing from the token endpoint's answer, or too long")
        return token

    async def _jwks(self, force: bool) -> dict[str, dict[str, Any]]:
        # The age of the key set (infinite before the first fetch), not whether it holds keys: an
        # empty set is not fetched again on every sign-in. Kept for sso.metadata_ttl_s, so a key
        # the provider withdraws stops being trusted; an unknown kid refetches at most once per
        # sso.jwks_refetch_s (refetched a moment ago: an unknown kid does not make us ask again).
        def fresh() -> bool:
            age = time.monotonic() - self._keys_at
            return age < (self.cfg.jwks_refetch_s if force else self.cfg.metadata_ttl_s)

        if fresh():
            return self._keys
        async with self._keys_lock:
            if fresh():  # fetched by another sign-in while this one waited
                return self._keys
            meta = await self.metadata()
            doc = await self._get(meta.jwks_uri, "sso.jwks_uri")
            keys = doc.get("keys")
            if not isinstance(keys, list):
                raise IdpError("sso.jwks_uri: the answer has no 'keys' list")
            found: dict[str, dict[str, Any]] = {}
            for k in keys[:MAX_KEYS]:
                if isinstance(k, dict) and isinstance(k.get("kid"), str) and k.get("use", "sig") == "sig":
                    found[k["kid"]] = k
            self._keys, self._keys_at = found, time.monotonic()
            return found

    async def _key(self, kid: str, alg: str) -> Any:
        jwk = (await self._jwks(False)).get(kid)
        if jwk is None:  # the provider may have rotated its keys: ask once more
            jwk = (await self._jwks(True)).get(kid)
        if jwk is None:
            raise Refused("id_token: signed with a key the provider does not publish (unknown kid)")
        if jwk.get("kty") != ALGORITHMS[alg] or jwk.get("alg", alg) != alg:
            raise Refused(f"id_token: the key {kid[:64]!r} is not a {alg} key")
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            raise Refused(f"id_token: the provider's key {kid[:64]!r} is unusable") from None

    async def verify(self, token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, once everything about it is checked."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Refused("id_token: malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise Refused(f"id_token: algorithm {str(alg)[:16]!r} is not accepted (RS256 or ES256 only)")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise Refused("id_token: no key id (kid) in its header")
        key = await self._key(kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.cfg.client_id,
                issuer=self.cfg.issuer,
                leeway=self.cfg.clock_skew_s,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("id_token: expired") from None
        except jwt.InvalidAudienceError:
            raise Refused("id_token: aud is not this client (sso.client_id)") from None
        except jwt.InvalidIssuerError:
            raise Refused("id_token: iss is not the configured issuer (sso.issuer)") from None
        except jwt.ImmatureSignatureError:
            raise Refused("id_token: issued in the future") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Refused(f"id_token: the claim {exc.claim!r} is missing") from None
        except jwt.PyJWTError:
            raise Refused("id_token: the signature or a claim is invalid") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.cfg.client_id:
            raise Refused("id_token: several audiences and azp is not this client")
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise Refused("id_token: nonce does not match the sign-on that was started")
        return claims
