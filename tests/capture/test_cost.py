"""Pricing from the OISP bundle and ``agentwatch prices refresh``."""

from __future__ import annotations

import json

import orjson
from typer.testing import CliRunner

from agentwatch.capture import cost
from agentwatch.cli import app


def test_price_from_packaged_bundle():
    table = cost.PriceTable(cost.packaged_bundle())
    bundle = cost.packaged_bundle()["models"]
    gpt4o = bundle["openai/gpt-4o"]
    usage = {"prompt_tokens": 2000, "completion_tokens": 500}
    cost.price_usage(table, "openai", "gpt-4o", usage)
    assert usage["input_cost_usd"] == round(2000 * gpt4o["input_cost_per_1k"] / 1000, 8)
    assert usage["output_cost_usd"] == round(500 * gpt4o["output_cost_per_1k"] / 1000, 8)
    assert usage["total_cost_usd"] == round(usage["input_cost_usd"] + usage["output_cost_usd"], 8)
    # cached prompt tokens are charged at the cache-read price
    cached = {"prompt_tokens": 2000, "completion_tokens": 0, "cached_tokens": 1000}
    cost.price_usage(table, "openai", "gpt-4o", cached)
    expected = 1000 * gpt4o["input_cost_per_1k"] / 1000 + 1000 * gpt4o["cache_read_cost_per_1k"] / 1000
    assert cached["input_cost_usd"] == round(expected, 8)
    # a dated variant falls back to its base model; an unknown model is left unpriced
    assert table.lookup("openai", "gpt-4o-2031-01-01") == table.lookup("openai", "gpt-4o")
    unknown = {"prompt_tokens": 1, "completion_tokens": 1}
    cost.price_usage(table, "openai", "no-such-model-xyz", unknown)
    assert "total_cost_usd" not in unknown


def test_prices_refresh_installs_a_bundle_and_resets(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTWATCH_DATA_DIR", str(tmp_path))
    doc = cost.packaged_bundle()
    doc["models"]["openai/gpt-4o"]["input_cost_per_1k"] = 1.0
    new = tmp_path / "new-bundle.json"
    new.write_text(json.dumps(doc))
    runner = CliRunner()
    r = runner.invoke(app, ["prices", "refresh", "--from", str(new)])
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout.strip().splitlines()[-1])["models"] == len(doc["models"])
    table = cost.PriceTable.for_data_dir(str(tmp_path))
    assert table.lookup("openai", "gpt-4o").input_per_1k == 1.0
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": []}')
    r = runner.invoke(app, ["prices", "refresh", "--from", str(bad)])
    assert r.exit_code == 2 and "bundle.models: must be an object" in r.output
    r = runner.invoke(app, ["prices", "refresh"])
    assert r.exit_code == 0 and not (tmp_path / cost.BUNDLE_NAME).exists()
    assert cost.PriceTable.for_data_dir(str(tmp_path)).lookup("openai", "gpt-4o").input_per_1k == 0.0025
