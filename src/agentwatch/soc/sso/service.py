"""The sign-on component (lifecycle ``sso``): the provider clients and the store, as ``aw.sso``."""

from __future__ import annotations

from typing import Any

from agentwatch.soc.sso.oidc import OidcClient
from agentwatch.soc.sso.settings import SsoSettings
from agentwatch.soc.sso.store import SsoStore


class SsoService:
    def __init__(self, aw: Any) -> None:
        self.settings: SsoSettings = aw.settings.sso
        self.store = SsoStore(aw.engine)
        self.oidc = OidcClient(self.settings)
        aw.sso = self
