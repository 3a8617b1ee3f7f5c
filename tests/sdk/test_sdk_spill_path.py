"""The default spill file belongs to one collector: events spilled for one are never replayed
to another by a client of that other one. A path the user gives is used as given."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentwatch.sdk import AopClient
from agentwatch.sdk.transport import Transport
from tests.sdk.test_sdk_hunt import spilled, unreachable


def spill_path_of(url: str, **options: object) -> Path:
    t = Transport(url, max_retries=1, **options)
    t.close(1)
    return t.spill_path


def test_clients_of_different_collectors_never_share_the_default_spill_file(open_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTWATCH_SDK_SPILL", str(tmp_path / "spill.jsonl"))
    down = AopClient("a", url=unreachable(), max_retries=1)
    down.thought("for the collector that is down")
    down.close(2)
    up = AopClient("b", url=open_server.url)
    up.thought("for the collector that is up")
    assert up.flush(10)
    up.close(5)
    assert down.transport.spill_path != up.transport.spill_path
    assert [e["payload"]["content"] for e in spilled(down.transport.spill_path)] == ["for the collector that is down"]
    assert up.stats["replayed"] == 0
    with open_server.client() as c:
        assert c.get(f"/sessions/{down.session_id}").status_code == 404  # never replayed to this one
        assert c.get(f"/sessions/{up.session_id}").status_code == 200


def test_the_default_spill_path_names_the_collector(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AGENTWATCH_SDK_SPILL", raising=False)
    base = unreachable()
    spellings = [base, base.replace("http://", "HTTP://") + "/", base.replace("://", "://user:s3cret@")]
    same = {spill_path_of(url) for url in spellings}  # one collector however it is written
    assert len(same) == 1
    path = same.pop()
    assert path.parent == tmp_path / ".agentwatch"
    assert path.name.startswith("sdk-spill-") and path.suffix == ".jsonl" and "s3cret" not in path.name
    assert spill_path_of(base + "/tenant-b") != path
    assert spill_path_of(unreachable()) != path


def test_the_environment_variable_names_where_the_per_collector_files_go(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTWATCH_SDK_SPILL", str(tmp_path / "spool" / "agent.jsonl"))
    path = spill_path_of(unreachable())
    assert path.parent == tmp_path / "spool"
    assert path.name.startswith("agent-") and path.suffix == ".jsonl"


def test_a_spill_path_given_by_the_user_is_kept_as_given(tmp_path):
    given = tmp_path / "mine.jsonl"
    assert spill_path_of(unreachable(), spill_path=given) == given
    assert spill_path_of(unreachable(), spill_path=str(given)) == given


def test_a_shared_spill_file_left_by_an_older_sdk_is_pointed_out(tmp_path, monkeypatch, caplog):
    """Its events say nothing of their collector: they are not replayed, and the log says where
    they are and how to deliver them."""
    caplog.set_level(logging.WARNING, logger="agentwatch.sdk")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AGENTWATCH_SDK_SPILL", raising=False)
    old = tmp_path / ".agentwatch" / "sdk-spill.jsonl"
    old.parent.mkdir()
    old.write_bytes(b'{"left": "by an older sdk"}\n')
    spill_path_of(unreachable())
    spill_path_of(unreachable())
    warnings = [r.getMessage() for r in caplog.records if str(old) in r.getMessage()]
    assert len(warnings) == 1 and "spill_path" in warnings[0]
    assert old.read_bytes() == b'{"left": "by an older sdk"}\n'


def test_an_environment_variable_naming_no_file_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTWATCH_SDK_SPILL", "/")
    with pytest.raises(ValueError, match="^AGENTWATCH_SDK_SPILL: "):
        AopClient("agent", url=unreachable())
