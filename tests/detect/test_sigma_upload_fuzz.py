"""Sigma rules (from the SigmaHQ corpus and agentwatch's own kind) with parts replaced,
removed or added (``tests.support.mutations``), uploaded as a dry run to a real server:
each is accepted or refused with a 4xx naming what is wrong, never a 5xx. The values drawn
include text that is no regular expression, or a slow one, for ``|re`` fields.
Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings

from tests.conftest import SHARED
from tests.detect.test_engine import SIGMA_RULE
from tests.support.mutations import mutated
from tests.support.server import RunningServer

CORPUS = SHARED / "data" / "sigmahq" / "rules"
SEEDS = [  # every scalar read as text (dates would not survive the copy through JSON)
    yaml.load(SIGMA_RULE, Loader=yaml.BaseLoader),  # noqa: S506 (BaseLoader builds no objects)
    *(
        yaml.load((CORPUS / path).read_text(), Loader=yaml.BaseLoader)  # noqa: S506
        for path in (
            "identity/okta/okta_password_in_alternateid_field.yml",  # |re
            "network/zeek/zeek_rdp_public_listener.yml",  # |cidr
            "web/proxy_generic/proxy_webdav_external_execution.yml",
        )
    ),
]
HOT = [("detection", "condition"), ("logsource", "category"), ("id",), ("level",)]


@given(rule=mutated(SEEDS, HOT, frozenset()))
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mutated_rules_are_accepted_or_refused_never_a_server_error(open_server: RunningServer, rule: Any) -> None:
    text = yaml.safe_dump(rule, allow_unicode=True)
    with open_server.client() as c:
        r = c.post("/api/v1/sigma/rules", json={"yaml": text, "dry_run": True})
        assert r.status_code in (200, 400, 409, 413, 422), r.text
        if r.status_code != 200:
            assert r.json()["error"]["message"], r.text
