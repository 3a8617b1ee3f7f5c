"""Settings: TOML file, AGENTWATCH_* environment overrides, validation, masking."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentwatch.config import Settings, load_settings


def test_toml_file_then_environment_override(tmp_path, monkeypatch):
    cfg = tmp_path / "agentwatch.toml"
    cfg.write_text(
        'port = 8123\ncors_origins = ["http://localhost:3000"]\n[pipeline]\nbatch_size = 77\noverflow = "block"\n'
    )
    monkeypatch.setenv("AGENTWATCH_PIPELINE__BATCH_SIZE", "500")
    s = load_settings(cfg)
    assert s.port == 8123
    assert s.cors_origins == ["http://localhost:3000"]
    assert s.pipeline.batch_size == 500  # environment wins over the file
    assert s.pipeline.overflow == "block"


def test_defaults_are_loopback_sqlite_and_auth_on(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTWATCH_CONFIG", raising=False)
    s = Settings(data_dir=tmp_path)
    assert (s.host, s.port) == ("127.0.0.1", 7777)
    assert s.is_loopback and s.auth.enabled
    assert s.resolved_database_url() == f"sqlite:///{tmp_path / 'agentwatch.db'}"


def test_invalid_values_name_the_field(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[pipeline]\noverflow = "explode"\n')
    with pytest.raises(ValidationError) as info:
        load_settings(cfg)
    assert "pipeline.overflow" in str(info.value)
    with pytest.raises(ValidationError, match="host"):
        Settings(host="not-an-address")
    with pytest.raises(ValidationError, match="unexpected|extra"):
        Settings(prot=1)


def test_secrets_are_masked(tmp_path):
    s = Settings(
        data_dir=tmp_path, database_url="postgresql://u:hunter2@127.0.0.1/db", redis_url="redis://:pw@127.0.0.1"
    )
    dumped = str(s.masked())
    assert "hunter2" not in dumped and ":pw@" not in dumped
