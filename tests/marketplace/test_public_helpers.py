"""The marketplace installs through the public helpers of the rules and playbooks routes, never
through another module's private (underscore) names."""

from __future__ import annotations

import ast
import inspect

from agentwatch.api import v1_rules
from agentwatch.marketplace import install
from agentwatch.soc.playbooks import api as playbooks_api


def test_install_imports_no_private_name_of_another_module() -> None:
    tree = ast.parse(inspect.getsource(install))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_the_shared_helpers_are_public_and_documented() -> None:
    for fn in (
        v1_rules.synced_rule_engine,
        v1_rules.run_rule_change,
        playbooks_api.reload_automatic_playbooks,
        playbooks_api.check_step_permissions,
    ):
        assert not fn.__name__.startswith("_") and (fn.__doc__ or "").strip()
