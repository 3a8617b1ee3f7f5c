"""Settings of the marketplace (``[marketplace]`` in the config file, ``AGENTWATCH_MARKETPLACE__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agentwatch.marketplace.signing import load_public


class MarketplaceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trusted_keys: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="publisher public keys trusted besides the bundled one (base64 of the 32-byte Ed25519 key)",
    )
    allow_private: bool = Field(False, description="let index_url be a loopback or private address")
    allow_http: bool = Field(False, description="let index_url use plain http (tests only; https otherwise)")
    index_url: str | None = Field(
        None, description="a remote index of signed items listed beside the bundled one (passes the SSRF guard)"
    )
    refresh_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="the remote index is fetched at most this often")
    timeout_s: float = Field(15.0, gt=0, le=120, description="longest wait for one fetch of the remote index")
    max_bytes: int = Field(1024 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest remote index accepted")

    @field_validator("trusted_keys")
    @classmethod
    def _keys_are_ed25519(cls, v: list[str]) -> list[str]:
        for i, text in enumerate(v):
            try:
                load_public(text)
            except ValueError as exc:
                raise ValueError(f"trusted_keys[{i}]: {exc}") from None
        return v

    @field_validator("index_url")
    @classmethod
    def _url_passes_the_ssrf_guard(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        from agentwatch.net.ssrf import SSRFError, UnresolvedHost, check_url

        schemes = {"https", "http"} if info.data.get("allow_http") else {"https"}
        try:
            check_url(v, allow_private=bool(info.data.get("allow_private", False)), schemes=schemes)
        except UnresolvedHost:
            pass  # not resolvable now: its addresses are checked again at connect time
        except SSRFError as exc:
            raise ValueError(str(exc).removeprefix("url: ")) from None
        return v
