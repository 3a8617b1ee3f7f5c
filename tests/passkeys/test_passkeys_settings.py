"""``[passkeys]``: the relying party follows the server's loopback address unless set, and
bad values are refused when the settings load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentwatch.api.errors import ApiError
from agentwatch.config import Settings
from agentwatch.soc.passkeys.ceremony import party


def test_on_loopback_the_relying_party_is_localhost_and_the_servers_own_origins() -> None:
    rp = party(Settings(port=7777))
    assert rp.rp_id == "localhost"
    assert rp.origins == ("http://127.0.0.1:7777", "http://localhost:7777")
    assert party(Settings(host="::1", port=80)).origins == ("http://[::1]:80", "http://localhost:80")


def test_configured_values_are_used_as_given() -> None:
    cfg = {"rp_id": "soc.example.com", "origins": ["https://soc.example.com"], "user_verification": "required"}
    rp = party(Settings(host="0.0.0.0", passkeys=cfg))  # noqa: S104
    assert (rp.rp_id, rp.origins, rp.uv_required) == ("soc.example.com", ("https://soc.example.com",), True)


def test_off_loopback_without_a_relying_party_the_routes_are_unavailable() -> None:
    with pytest.raises(ApiError) as exc:
        party(Settings(host="0.0.0.0"))  # noqa: S104
    assert exc.value.status == 503 and "passkeys.rp_id" in exc.value.message


def test_turned_off_answers_not_found() -> None:
    with pytest.raises(ApiError) as exc:
        party(Settings(passkeys={"enabled": False}))
    assert exc.value.status == 404


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"rp_id": "https://soc.example.com"}, "rp_id"),
        ({"rp_id": "Soc.Example.com"}, "rp_id"),
        ({"origins": ["https://soc.example.com/login"]}, "origins"),
        ({"origins": ["ftp://soc.example.com"]}, "origins"),
        ({"user_verification": "always"}, "user_verification"),
        ({"max_per_user": 0}, "max_per_user"),
        ({"challenge_ttl_s": 5}, "challenge_ttl_s"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(values: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as exc:
        Settings(passkeys=values)
    assert exc.value.errors()[0]["loc"][:2] == ("passkeys", field)
