"""The access layer as one service: the authenticator behind every route guard, sessions,
API keys, login throttling, rate-limit counters, and the audit trail of auth events.

Created by the ``auth`` lifecycle factory; sets ``aw.auth`` (read by
``agentwatch.api.security.Guard``) and ``aw.audit`` (for other parts that audit actions).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.requests import HTTPConnection

from agentwatch.api.errors import ApiError, Conflict, Unavailable
from agentwatch.api.security import Principal, deny
from agentwatch.soc.audit import AuditEntry, AuditLog
from agentwatch.soc.auth import credentials
from agentwatch.soc.auth.apikeys import ApiKey, ApiKeyStore
from agentwatch.soc.auth.attempts import StoreCounter
from agentwatch.soc.auth.limits import Counter, Decision, MemoryCounter, RedisCounter
from agentwatch.soc.auth.passwords import Passwords, generate_password
from agentwatch.soc.auth.roles import RoleStore
from agentwatch.soc.auth.shared_counter import SHARED_COUNTERS_ENV, SharedCounter
from agentwatch.soc.auth.tokens import CredentialError, Issued, RefreshReuse, TokenService, digest, load_secret
from agentwatch.soc.auth.users import User, UserStore

log = structlog.get_logger("agentwatch.auth")

BOOTSTRAP_EMAIL = "admin@agentwatch.local"
STATE_KEY = "aw_auth"
CACHE_TTL_S = 2.0
TOUCH_EVERY_S = 60.0
MAX_CACHE = 10_000
MIN_SECRET_BYTES = 32
# Derives the key that hashes typed login identifiers from the token signing key: a key of
# its own, so such a hash is never the HS256 signature of the text that was typed.
IDENTIFIER_KEY_LABEL = b"agentwatch: typed login identifiers, v1"


def client_of(conn: HTTPConnection | None) -> str:
    if conn is None or conn.client is None:
        return ""
    return conn.client.host or ""


def identifier_key(signing_key: bytes) -> bytes:
    """The key of :meth:`AuthService.identifier_hmac`, derived from the token signing key (a
    secret every process of one deployment already shares, so their hashes agree)."""
    return hmac.new(signing_key, IDENTIFIER_KEY_LABEL, hashlib.sha256).digest()


def actor_of(principal: Principal | None) -> dict[str, str]:
    if principal is None:
        return {"actor_kind": "anonymous", "actor_id": "anonymous", "actor_name": "anonymous"}
    return {"actor_kind": principal.kind, "actor_id": principal.id, "actor_name": principal.name}


@dataclass
class _Resolved:
    principal: Principal | None
    error: tuple[int, str] | None  # (status, message) for a credential that was refused
    audited: bool = False


class AuthService:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.settings = aw.settings
        cfg = aw.settings.auth
        self.passwords = Passwords(cfg.password_hash)
        self.users = UserStore(aw.engine, self.passwords)
        self.roles = RoleStore(aw.engine)
        self.keys = ApiKeyStore(aw.engine)
        secret = cfg.jwt_secret.get_secret_value() if cfg.jwt_secret else None
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"auth.jwt_secret: must be at least {MIN_SECRET_BYTES} bytes (HS256 key)")
        signing_key = load_secret(secret, aw.settings.data_dir)
        self.tokens = TokenService(aw.engine, signing_key, cfg.access_ttl_s, cfg.refresh_ttl_s)
        self._identifier_key = identifier_key(signing_key)
        self.audit = AuditLog(aw.engine)
        # request rate limits: in this process's memory, or in the table the processes of one
        # ``serve --processes N`` share (soc.auth.shared_counter)
        shared = os.environ.get(SHARED_COUNTERS_ENV)
        self.counter: Counter = SharedCounter(shared) if shared else MemoryCounter()
        self.attempts: Counter = StoreCounter(aw.engine)  # sign-in budgets (soc.auth.attempts)
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._generation = 0  # bumped by forget_credentials: a lookup begun before may not be cached
        self._touched: dict[str, float] = {}
        aw.auth = self
        aw.audit = self.audit
        aw.pipeline.audit_writer = self.audit.append_in

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.redis_url is not None:
            url = self.settings.redis_url.get_secret_value()
            self.counter = RedisCounter(url, self.settings.auth.rate_limit.redis_prefix, fallback=self.counter)
        if self.settings.auth.enabled:
            await asyncio.to_thread(self.bootstrap)

    async def stop(self) -> None:
        await self.audit.drain()
        await self.counter.close()

    def bootstrap(self) -> tuple[str, str] | None:
        """On first start (no user at all) create an admin and print its password once, to stderr."""
        if self.users.count():
            return None
        password = generate_password()
        try:
            user = self.users.create(BOOTSTRAP_EMAIL, password, "admin")
        except Conflict:  # another process got there first
            return None
        self.audit.append(
            AuditEntry("user.bootstrap", "system", "system", "system", target=f"user:{user.id}", status=201)
        )
        # Deliberately not through the structured logger: log pipelines keep what they receive.
        print(
            "\nagentwatch: created the first admin account (shown once, store it now)\n"
            f"  email:    {BOOTSTRAP_EMAIL}\n  password: {password}\n",
            file=sys.stderr,
            flush=True,
        )
        return BOOTSTRAP_EMAIL, password

    # -- the authenticator (called by the route guard and the access middleware) ----------------

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The guard's question. An invalid credential is audited once and answered with 401."""
        resolved = await self._resolved(conn)
        if resolved.error is not None:
            if not resolved.audited:
                resolved.audited = True
                await self.record(
                    AuditEntry(
                        "auth.credential_rejected",
                        target=conn.url.path[:512],
                        status=resolved.error[0],
                        client=client_of(conn),
                        details={"reason": resolved.error[1]},
                    )
                )
            raise deny(conn, *resolved.error)
        return resolved.principal

    async def peek_principal(self, conn: HTTPConnection) -> Principal | None:
        """The principal for rate limiting and audit; an invalid credential counts as none."""
        return (await self._resolved(conn)).principal

    async def _resolved(self, conn: HTTPConnection) -> _Resolved:
        """Resolve the request's credential once per request (the result is kept in its state,
        per credential: a guard may look at a view of the request with other headers)."""
        try:
            cred = credentials.extract(conn)
        except CredentialError as exc:
            return _Resolved(None, (401, str(exc)))
        if cred is None:
            return _Resolved(None, None)
        per_request = conn.scope.setdefault("state", {}).setdefault(STATE_KEY, {})
        key = digest(cred.token)
        resolved = per_request.get(key)
        if resolved is None:
            resolved = per_request[key] = await self._resolve(cred, client_of(conn))
        return resolved

    async def _resolve(self, cred: credentials.Credential, client: str) -> _Resolved:
        key = digest(cred.token)
        try:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                principal = hit[1]
            else:
                generation = self._generation
                principal = await asyncio.to_thread(self._principal_sync, cred)
                if generation == self._generation:  # else a revocation or role change came meanwhile
                    if len(self._cache) > MAX_CACHE:
                        self._cache.clear()
                    self._cache[key] = (time.monotonic() + CACHE_TTL_S, principal)
            if principal.kind == "api_key":
                await self._touch(principal.id, client)
            return _Resolved(principal, None)
        except CredentialError as exc:
            return _Resolved(None, (401, str(exc)))
        except Exception:  # a failed lookup denies, never grants
            log.exception("auth.lookup_failed")
            return _Resolved(None, (503, "authentication is unavailable, retry later"))

    def user_principal(self, user_id: str, email: str, role: str, session_id: str | None) -> Principal:
        perms = self.roles.permissions_of(role)
        return Principal("user", user_id, email, perms, extra={"role": role, "session_id": session_id})

    def _principal_sync(self, cred: credentials.Credential) -> Principal:
        if cred.kind == "jwt":
            user_id, session_id = self.tokens.decode_access(cred.token)
            info = self.tokens.session_user(user_id, session_id)
            return self.user_principal(info.user_id, info.email, info.role, session_id)
        key = self.keys.lookup(cred.token)
        if key is None:
            raise CredentialError("api key: invalid")
        if key.revoked_at is not None:
            raise CredentialError("api key: revoked")
        if key.expires_at is not None and key.expires_at <= time.time():
            raise CredentialError("api key: expired")
        owner = self.users.get(key.owner_id)
        if owner is None or owner.disabled:
            raise CredentialError("api key: its owner no longer exists or is disabled")
        return self.key_principal(key, owner)

    def key_principal(self, key: ApiKey, owner: User) -> Principal:
        owner_p = self.user_principal(owner.id, owner.email, owner.role, None)
        effective = frozenset(s for s in key.scopes if owner_p.can(s))
        extra = {"owner_id": owner.id, "owner_email": owner.email, "prefix": key.prefix, "scopes": key.scopes}
        return Principal("api_key", key.id, key.name, effective, extra=extra)

    async def _touch(self, key_id: str, client: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        if len(self._touched) > MAX_CACHE:
            self._touched = {key_id: now}
        await asyncio.to_thread(self.keys.touch, key_id, client)

    async def recheck(self, conn: HTTPConnection) -> Principal | None:
        """The principal behind ``conn``'s credential as of now, for a stream that outlives its
        handshake: None once the credential no longer authenticates (or cannot be looked up).
        Skips the per-request memo but not the principal cache, so a stream re-checking every
        few seconds costs a lookup at most once per ``CACHE_TTL_S`` per credential."""
        try:
            cred = credentials.extract(conn)
        except CredentialError:
            return None
        if cred is None:
            return None
        return (await self._resolve(cred, client_of(conn))).principal

    def forget_credentials(self) -> None:
        """Drop cached principals (after a revocation or a role change in this process)."""
        self._generation += 1
        self._cache.clear()

    # -- audit ---------------------------------------------------------------------------------

    async def record(self, entry: AuditEntry) -> None:
        try:
            await self.audit.record(entry)
        except Exception:
            raise Unavailable("audit: the audit log cannot be written; action refused") from None

    def entry(self, action: str, principal: Principal | None, conn: HTTPConnection | None, **kw: Any) -> AuditEntry:
        return AuditEntry(action, **actor_of(principal), client=client_of(conn), **kw)

    # -- sessions ------------------------------------------------------------------------------

    async def take_attempt(
        self, budgets: tuple[tuple[str, int], ...], window_s: int
    ) -> tuple[list[tuple[str, float]], Decision | None]:
        """Count a password attempt against each budget *before* it is checked, so concurrent
        attempts cannot all pass a check made before any of them failed. Returns the hits
        taken, or, when a budget is spent, its refusing decision (the hits given back)."""
        taken: list[tuple[str, float]] = []
        for key, limit in budgets:
            decision = await self.attempts.hit(key, limit, window_s)
            taken.append((key, decision.reset_at))
            if not decision.allowed:
                await self.give_back(taken, window_s)
                return [], decision
        return taken, None

    async def give_back(self, taken: list[tuple[str, float]], window_s: int) -> None:
        for key, reset_at in taken:
            await self.attempts.release(key, window_s, reset_at)

    # -- what is kept of a typed login identifier ------------------------------------------------

    def identifier_hmac(self, typed: str) -> str:
        """HMAC-SHA256 of an identifier as typed, under a server secret. People type their
        password into the e-mail field; a plain hash of it would be reversed by a dictionary,
        this one only by someone holding the signing key. Equal inputs give equal hashes, so
        repeated attempts with one unknown identifier can still be told apart and counted."""
        return hmac.new(self._identifier_key, typed.encode(), hashlib.sha256).hexdigest()

    def typed_identifier(self, typed: str, account: User | None) -> dict[str, Any]:
        """What the audit log keeps of an identifier typed at login: the e-mail and user id
        when it names an account, else its keyed hash and its length, never the text."""
        if account is not None:
            return {"email": account.email, "user_id": account.id}
        return {"email_hmac": self.identifier_hmac(typed), "email_length": len(typed)}

    def account_budget(self, email: str) -> str:
        """The failed-login budget's key for an account, known or not (Redis keeps key names
        in clear, so they carry the keyed hash, not the identifier or its plain hash)."""
        return "login:acct:" + self.identifier_hmac(email)

    async def _account_named(self, email: str) -> User | None:
        try:
            return await asyncio.to_thread(self.users.by_email, email)
        except Exception:  # unknown is the safe answer: the identifier is then kept only hashed
            log.warning("auth.account_lookup_failed")
            return None

    async def login(self, email: str, password: str, conn: HTTPConnection) -> tuple[Issued, User]:
        cfg = self.settings.auth.login
        client = client_of(conn)
        budgets = ((self.account_budget(email), cfg.per_account), ("login:addr:" + client, cfg.per_address))
        taken, refused = await self.take_attempt(budgets, cfg.window_s)
        if refused is not None:
            named = self.typed_identifier(email, await self._account_named(email))
            await self.record(AuditEntry("auth.login.throttled", client=client, status=429, details=named))
            raise ApiError(
                "login: too many failed attempts, retry later",
                status=429,
                headers={"Retry-After": str(refused.retry_after())},
            )
        try:
            account, user = await asyncio.to_thread(self._check_password, email, password)
        except Exception:  # not a failed attempt: the check itself failed
            await self.give_back(taken, cfg.window_s)
            raise
        if user is None:  # the hits taken stay: they count this failure
            named = self.typed_identifier(email, account)
            await self.record(AuditEntry("auth.login.failure", client=client, status=401, details=named))
            raise ApiError("email or password: invalid", status=401)
        await self.attempts.clear(budgets[0][0], cfg.window_s)
        await self.give_back(taken[1:], cfg.window_s)  # a successful login costs the address nothing
        issued = await asyncio.to_thread(self.tokens.start_session, user.id, client)
        principal = self.user_principal(user.id, user.email, user.role, issued.session_id)
        await self.record(self.entry("auth.login", principal, conn, status=200, target=f"session:{issued.session_id}"))
        return issued, user

    async def verify_current_password(self, user: User, password: str) -> bool:
        """A password re-check (password change), throttled with the account's failed logins."""
        cfg = self.settings.auth.login
        budget = (self.account_budget(user.email), cfg.per_account)
        taken, refused = await self.take_attempt((budget,), cfg.window_s)
        if refused is not None:
            raise ApiError(
                "current_password: too many failed attempts, retry later",
                status=429,
                headers={"Retry-After": str(refused.retry_after())},
            )
        try:
            ok = await asyncio.to_thread(self.passwords.verify, user.password_hash, password)
        except Exception:
            await self.give_back(taken, cfg.window_s)
            raise
        if ok:
            await self.give_back(taken, cfg.window_s)
        return ok

    def _check_password(self, email: str, password: str) -> tuple[User | None, User | None]:
        """(the account ``email`` names, if any; that account if the password opens it)."""
        user = self.users.by_email(email)
        ok = self.passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            return user, None
        pw = self.passwords
        self.users.logged_in(user.id, pw.hash(password) if pw.needs_rehash(user.password_hash) else None)
        return user, user

    async def refresh(self, refresh_token: str, conn: HTTPConnection) -> tuple[Issued, User]:
        try:
            issued = await asyncio.to_thread(self.tokens.rotate, refresh_token)
        except RefreshReuse as exc:
            self.forget_credentials()
            await self.record(AuditEntry("auth.refresh.reuse", client=client_of(conn), status=401))
            raise ApiError(str(exc), status=401) from None
        except CredentialError as exc:
            await self.record(
                AuditEntry("auth.refresh.failure", client=client_of(conn), status=401, details={"reason": str(exc)})
            )
            raise ApiError(str(exc), status=401) from None
        user = await asyncio.to_thread(self.users.get, issued.user_id)
        if user is None:
            raise ApiError("refresh_token: invalid", status=401)
        principal = self.user_principal(user.id, user.email, user.role, issued.session_id)
        await self.record(
            self.entry("auth.refresh", principal, conn, status=200, target=f"session:{issued.session_id}")
        )
        return issued, user

    async def logout(self, conn: HTTPConnection, refresh_token: str | None) -> bool:
        """End the session named by the bearer access token or by ``refresh_token``."""
        principal = await self.peek_principal(conn)
        session_id: str | None = None
        if principal is not None and principal.kind == "user":
            session_id = principal.extra.get("session_id")
        if session_id is None and refresh_token:
            found = await asyncio.to_thread(self.tokens.session_of_refresh, refresh_token)
            if found is not None:
                session_id = found[0]
        if session_id is None:
            raise ApiError("logout needs a valid access token or refresh_token", status=401)
        await asyncio.to_thread(self.tokens.revoke_session, session_id, "logout")
        self.forget_credentials()
        await self.record(self.entry("auth.logout", principal, conn, status=200, target=f"session:{session_id}"))
        return True
