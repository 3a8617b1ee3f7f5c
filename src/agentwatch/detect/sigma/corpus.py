"""Corpus proof: load a rule tree, compile it, replay the SigmaHQ regression samples.

SigmaHQ keeps, for some rules, a folder under ``regression_data/`` with an
``info.yml`` (the rule id under ``rule_metadata``, and under ``regression_tests_info``
the sample's path and optionally ``match_count``) and the sample itself as EVTX plus
its JSON rendering (``<rule id>.json``). A sample passes when the rule matches at least
one of its records. ``match_count`` is compared too and a difference is listed as a
note (some JSON renderings hold more records than the count was taken on). Samples of
rules that are not in the loaded tree are counted as ``skipped``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agentwatch.detect.fieldmap import windows
from agentwatch.detect.sigma.engine import SigmaEngine
from agentwatch.detect.sigma.loader import SigmaRule, load_path

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SampleResult:
    rule_id: str
    title: str
    sample: str
    expected: int | None
    matched: int
    records: int
    ok: bool
    reason: str = ""

    @property
    def count_differs(self) -> bool:
        return self.expected is not None and self.matched != self.expected


@dataclass
class CorpusReport:
    files: int = 0
    rules: int = 0  # loaded (parsed and compiled) rule documents
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    engine_problems: list[tuple[str, str]] = field(default_factory=list)  # (rule id, reason)
    samples: list[SampleResult] = field(default_factory=list)
    skipped_samples: int = 0
    regex_engines: dict[str, int] = field(default_factory=dict)

    @property
    def compiled_files(self) -> int:
        return self.files - len(self.failures)

    @property
    def compile_ratio(self) -> float:
        return self.compiled_files / self.files if self.files else 0.0

    @property
    def samples_passed(self) -> int:
        return sum(1 for s in self.samples if s.ok)


def rule_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))


def default_regression_dir(rules_path: Path) -> Path | None:
    """``<checkout>/regression_data`` for a SigmaHQ ``rules`` folder or any folder inside it."""
    for parent in [rules_path.resolve(), *rules_path.resolve().parents][:8]:
        candidate = parent.parent / "regression_data"
        if candidate.is_dir():
            return candidate
    return None


def iter_samples(regression: Path) -> list[tuple[str, Path, int | None]]:
    """(rule id, JSON sample file, expected match count) for every sample that has a JSON rendering."""
    out: list[tuple[str, Path, int | None]] = []
    for info in sorted(regression.rglob("info.yml")):
        try:
            meta = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        rule_ids = [str(m.get("id")) for m in meta.get("rule_metadata") or [] if isinstance(m, dict)]
        tests = meta.get("regression_tests_info") or []
        if not rule_ids or not tests:
            continue
        for test in tests:
            if not isinstance(test, dict) or not test.get("path"):
                continue
            sample = info.parent / (Path(str(test["path"])).stem + ".json")
            if not sample.is_file():
                continue
            count = test.get("match_count")
            for rule_id in rule_ids:
                out.append((rule_id, sample, int(count) if isinstance(count, int) else None))
    return out


def run_corpus(
    rules_paths: str | Path | list[str | Path],
    regression: str | Path | None = None,
    *,
    progress: Progress | None = None,
) -> CorpusReport:
    """Load and compile the rule trees; replay regression samples; never raises per rule."""
    roots = [Path(p) for p in (rules_paths if isinstance(rules_paths, list) else [rules_paths])]
    root = roots[0]
    report = CorpusReport(files=sum(len(rule_files(r)) for r in roots))
    rules: list[SigmaRule] = []
    done_before = 0
    for r in roots:
        callback = (lambda d, t, base=done_before: progress("load", base + d, report.files)) if progress else None
        loaded, failures = load_path(r, progress=callback)
        rules.extend(loaded)
        report.failures.extend(failures)
        done_before += len(rule_files(r))
    engine = SigmaEngine(rules)
    report.engine_problems = [(p.rule_id, p.reason) for p in engine.problems]
    compiled = engine.compiled_ids() | {r.id for r in rules if r.kind != "detection"}
    report.rules = len([r for r in rules if r.id in compiled])
    report.regex_engines = engine.regex_engines()
    by_id: dict[str, SigmaRule] = {r.id: r for r in rules}
    reg_dir = Path(regression) if regression else default_regression_dir(root)
    if reg_dir is None:
        return report
    samples = iter_samples(reg_dir)
    for done, (rule_id, sample, expected) in enumerate(samples, 1):
        if progress:
            progress("replay", done, len(samples))
        rule = by_id.get(rule_id)
        if rule is None or rule_id not in engine.compiled_ids():
            report.skipped_samples += 1
            continue
        try:
            records = list(windows.iter_records(sample.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            report.samples.append(SampleResult(rule_id, rule.title, str(sample), expected, 0, 0, False, str(exc)))
            continue
        matched = 0
        for record in records:
            event = windows.to_event(record)
            if any(r.id == rule_id for r in engine.match(event)):
                matched += 1
        ok = matched > 0
        reason = "" if ok else f"matched none of {len(records)} records"
        report.samples.append(
            SampleResult(rule_id, rule.title, str(sample), expected, matched, len(records), ok, reason)
        )
    return report
