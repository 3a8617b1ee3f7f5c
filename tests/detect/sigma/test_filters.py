"""Sigma filters (meta filter rules) fold an extra condition into the rules they name."""

from __future__ import annotations

from tests.detect.sigma.helpers import engine, proc

RULE = """\
title: Curl run
id: 5d7a5b0e-0001-4c1e-9a51-5a8f2d0b7e11
name: curl_run
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: curl
  condition: sel
"""
OTHER = """\
title: Wget run
id: 5d7a5b0e-0002-4c1e-9a51-5a8f2d0b7e11
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: wget
  condition: sel
"""


def flt(rules: str, logsource: str = "{product: linux, category: process_creation}") -> str:
    return f"""\
title: Ignore the build server
logsource: {logsource}
filter:
  rules: {rules}
  build_host:
    User: ci-runner
  condition: not build_host
"""


def test_filter_by_id_excludes_only_the_named_rule():
    eng = engine(RULE, OTHER, flt("[5d7a5b0e-0001-4c1e-9a51-5a8f2d0b7e11]"))
    assert not eng.match(proc("curl x", user="ci-runner"))
    assert [r.title for r in eng.match(proc("curl x", user="alice"))] == ["Curl run"]
    assert [r.title for r in eng.match(proc("wget x", user="ci-runner"))] == ["Wget run"]


def test_filter_by_name_and_any():
    by_name = engine(RULE, flt("[curl_run]"))
    assert not by_name.match(proc("curl x", user="ci-runner"))
    anyrule = engine(RULE, OTHER, flt("any"))
    assert not anyrule.match(proc("curl x", user="ci-runner"))
    assert not anyrule.match(proc("wget x", user="ci-runner"))
    assert anyrule.match(proc("wget x", user="bob"))


def test_filter_for_another_logsource_does_not_apply():
    eng = engine(RULE, flt("any", "{product: windows, category: process_creation}"))
    assert eng.match(proc("curl x", user="ci-runner"))
