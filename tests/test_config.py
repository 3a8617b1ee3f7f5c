"""Settings: TOML file, AGENTWATCH_* environment overrides, validation, masking."""

from __future__ import annotations

import json

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


def test_config_command_masks_secrets_inside_nested_settings(tmp_path):
    """`agentwatch config` shows what `GET /api/v1/config` shows: output secrets and hook URLs hidden."""
    from typer.testing import CliRunner

    from agentwatch.cli import app

    outputs = [
        {"kind": "webhook", "url": "http://127.0.0.1:9/hook/path-token", "secret": "s3cr3t-value"},
        {"kind": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"},
    ]
    env = {"AGENTWATCH_DATA_DIR": str(tmp_path), "AGENTWATCH_DETECTION__OUTPUTS": json.dumps(outputs)}
    result = CliRunner().invoke(app, ["config"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["detection"]["outputs"]
    assert "s3cr3t-value" not in result.output and "XXXXSECRET" not in result.output
    assert "path-token" not in result.output
    assert shown[0]["secret"] == "***" and shown[0]["kind"] == "webhook"
    assert shown[1]["url"] == "https://hooks.slack.com/***"


def test_configured_gateway_routes_add_to_the_built_in_ones(tmp_path):
    groq = {"provider": "openai_compatible", "base_url": "https://api.groq.com/openai"}
    s = Settings(data_dir=tmp_path, capture={"routes": {"groq": groq}})
    assert set(s.capture.routes) == {"openai", "anthropic", "gemini", "ollama", "groq"}
    moved = {"openai": {"provider": "openai", "base_url": "https://proxy.internal.test"}, "ollama": None}
    s = Settings(data_dir=tmp_path, capture={"routes": moved})
    assert set(s.capture.routes) == {"openai", "anthropic", "gemini"}
    assert s.capture.routes["openai"].base_url == "https://proxy.internal.test"
