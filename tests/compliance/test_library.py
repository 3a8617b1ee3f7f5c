"""The shipped control library: it loads, its ids are the frameworks' own, and every rule it
maps to really exists in the rules agentwatch bundles (a mapping naming a missing rule fails here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentwatch.compliance.library import FRAMEWORKS_DIR, LibraryError, library, load
from agentwatch.config import Settings
from agentwatch.detect.atr.rules import bundled_rules
from agentwatch.detect.builtin import default_rules
from agentwatch.detect.pack import pack_rules


@pytest.fixture(scope="module")
def bundled() -> dict[str, list[str]]:
    """Every rule agentwatch ships (the ATR set, the pack, the built-in detectors): id -> tags."""
    rules = {r.id: r.tags for r in [*bundled_rules(), *pack_rules()]}
    rules.update({b.id: list(b.tags) for b in default_rules(Settings().detection)})
    return rules


def test_the_frameworks_and_their_ids() -> None:
    lib = library()
    assert [f.id for f in lib.frameworks] == ["mitre-atlas", "nist-ai-rmf", "owasp-llm-2025"]
    owasp = lib.framework("owasp-llm-2025")
    assert owasp is not None
    assert [c.id for c in owasp.controls] == [f"LLM{n:02d}" for n in range(1, 11)]
    atlas = lib.framework("mitre-atlas")
    assert atlas is not None
    assert sorted(c.id for c in atlas.controls) == [f"AML.TA{n:04d}" for n in range(16)]
    nist = lib.framework("nist-ai-rmf")
    assert nist is not None
    assert [c.id for c in nist.controls] == ["GOVERN", "MAP", "MEASURE", "MANAGE"]


def test_every_mapped_rule_id_is_a_bundled_rule(bundled: dict[str, list[str]]) -> None:
    missing = [
        (c.id, rid)
        for f in library().frameworks
        for c in f.controls
        if c.automatic and c.automatic.rules
        for rid in c.automatic.rules.ids
        if rid not in bundled
    ]
    assert missing == []


def test_every_mapped_tag_names_at_least_one_bundled_rule(bundled: dict[str, list[str]]) -> None:
    def hit(tag: str) -> bool:
        return any(t == tag or t.startswith(tag + ".") for tags in bundled.values() for t in tags)

    unused = [
        (c.id, tag)
        for f in library().frameworks
        for c in f.controls
        if c.automatic and c.automatic.rules
        for tag in c.automatic.rules.tags
        if not hit(tag)
    ]
    assert unused == []


def test_prompt_injection_maps_to_the_pack_rules_and_the_atr_category() -> None:
    found = library().control("LLM01")
    assert found is not None
    rules = found[1].automatic.rules  # type: ignore[union-attr]
    assert rules is not None
    assert set(rules.ids) == {"AW-PI-001", "AW-PI-002", "AW-PI-003"}
    assert rules.tags == ("atr.prompt-injection",)


def _copy(tmp_path: Path, old: str, new: str) -> Path:
    text = (FRAMEWORKS_DIR / "owasp-llm-2025.yaml").read_text()
    assert old in text
    (tmp_path / "owasp.yaml").write_text(text.replace(old, new, 1))
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("capabilities: [gateway_guard]", "capabilities: [crystal_ball]", "unknown capability 'crystal_ball'"),
        ("types: [atr, guard]", "types: [atr, rumour]", "unknown alert type 'rumour'"),
        ("title: Prompt injection", "titel: Prompt injection", "titel"),
        ("  - id: LLM02", "  - id: LLM01", "id 'LLM01' is used twice"),
        ("  - id: LLM02", "  - id: 'LLM 02'", "controls.1.id"),
    ],
)
def test_a_broken_framework_file_is_refused_naming_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(LibraryError) as err:
        load(_copy(tmp_path, old, new))
    assert "owasp" in str(err.value) and message in str(err.value)
