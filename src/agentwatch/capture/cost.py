"""Price of a response from the OISP bundle's model price table.

The bundle ships as package data (``agentwatch/data/oisp-bundle.json``). ``agentwatch prices
refresh --from FILE`` replaces it with a newer bundle in the data directory
(``<data_dir>/oisp-bundle.json``), which then takes precedence.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

BUNDLE_NAME = "oisp-bundle.json"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024

# gateway provider kind -> the bundle's provider id
BUNDLE_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google", "ollama": "ollama"}


class BundleError(ValueError):
    """A bundle file is not a usable OISP provider/price bundle."""


def validate_bundle(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BundleError("bundle: must be a JSON object")
    for key in ("models", "providers", "domain_index"):
        if not isinstance(doc.get(key), dict):
            raise BundleError(f"bundle.{key}: must be an object")
    for name, model in list(doc["models"].items())[:100_000]:
        if not isinstance(model, dict):
            raise BundleError(f"bundle.models.{name}: must be an object")
        for f in ("input_cost_per_1k", "output_cost_per_1k"):
            v = model.get(f)
            if v is not None and (not isinstance(v, int | float) or v < 0):
                raise BundleError(f"bundle.models.{name}.{f}: must be a non-negative number")
    return doc


def read_bundle_file(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle: larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle: not JSON ({exc})") from None
    return validate_bundle(doc)


def packaged_bundle() -> dict[str, Any]:
    return json.loads(resources.files("agentwatch.data").joinpath(BUNDLE_NAME).read_bytes())


@lru_cache(maxsize=8)
def load_bundle(data_dir: str | None = None) -> dict[str, Any]:
    """The refreshed bundle in ``data_dir`` when there is a valid one, else the packaged one."""
    if data_dir:
        local = Path(data_dir) / BUNDLE_NAME
        if local.is_file():
            try:
                return read_bundle_file(local)
            except (BundleError, OSError):
                pass
    return packaged_bundle()


def refresh(data_dir: Path, source: Path) -> dict[str, Any]:
    """Install ``source`` as the bundle used from now on (atomically); returns its stats."""
    doc = read_bundle_file(source)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".bundle-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(source.read_bytes())
    os.replace(tmp, data_dir / BUNDLE_NAME)
    load_bundle.cache_clear()
    PriceTable.cache_clear()
    return {"models": len(doc["models"]), "providers": len(doc["providers"]), "version": doc.get("bundle_version")}


@dataclass(frozen=True, slots=True)
class Price:
    input_per_1k: float
    output_per_1k: float
    cache_read_per_1k: float | None = None


class PriceTable:
    """Model id -> price, looked up by provider-qualified id, then bare id, then longest prefix."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.qualified: dict[str, Price] = {}
        self.bare: dict[str, Price] = {}
        for key, m in bundle.get("models", {}).items():
            if not isinstance(m, dict):
                continue
            i, o = m.get("input_cost_per_1k"), m.get("output_cost_per_1k")
            if not isinstance(i, int | float) or not isinstance(o, int | float):
                continue
            price = Price(float(i), float(o), m.get("cache_read_cost_per_1k"))
            self.qualified[key] = price
            mid = m.get("id")
            if isinstance(mid, str):
                self.bare.setdefault(mid, price)
        self._sorted_bare = sorted(self.bare, key=len, reverse=True)

    @classmethod
    def for_data_dir(cls, data_dir: str | None) -> PriceTable:
        """The table of ``data_dir``'s bundle, built once (a few data directories are kept, as
        :func:`load_bundle` keeps theirs: a process starting servers on many would grow without end)."""
        return _table_for(data_dir)

    @classmethod
    def cache_clear(cls) -> None:
        _table_for.cache_clear()

    def lookup(self, provider: str | None, model: str | None) -> Price | None:
        if not model:
            return None
        model = model.strip()
        bundle_provider = BUNDLE_PROVIDER.get(provider or "", provider)
        candidates = [model, model.removeprefix("models/")]
        for m in candidates:
            if bundle_provider and f"{bundle_provider}/{m}" in self.qualified:
                return self.qualified[f"{bundle_provider}/{m}"]
            if m in self.bare:
                return self.bare[m]
        # dated or suffixed variants ("gpt-4o-2024-11-20" when only "gpt-4o" is listed)
        base = candidates[-1]
        for known in self._sorted_bare:
            if base.startswith(known) and len(base) > len(known) and base[len(known)] in "-:@.":
                return self.bare[known]
        return None


def price_usage(table: PriceTable, provider: str | None, model: str | None, usage: dict[str, Any]) -> None:
    """Add ``input_cost_usd``/``output_cost_usd``/``total_cost_usd`` to ``usage`` when priced."""
    price = table.lookup(provider, model)
    if price is None:
        return
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = usage.get("cached_tokens") or 0
    if not isinstance(prompt, int) or not isinstance(completion, int) or not isinstance(cached, int):
        return
    if price.cache_read_per_1k is not None and 0 < cached <= prompt:
        inp = (prompt - cached) * price.input_per_1k / 1000 + cached * float(price.cache_read_per_1k) / 1000
    else:
        inp = prompt * price.input_per_1k / 1000
    out = completion * price.output_per_1k / 1000
    usage["input_cost_usd"] = round(inp, 8)
    usage["output_cost_usd"] = round(out, 8)
    usage["total_cost_usd"] = round(inp + out, 8)


@lru_cache(maxsize=8)
def _table_for(data_dir: str | None) -> PriceTable:
    return PriceTable(load_bundle(data_dir))
