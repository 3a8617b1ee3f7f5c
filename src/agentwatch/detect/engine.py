"""The one detection engine: Sigma, ATR, the agentwatch pack and built-in rules behind one interface.

Two ways in:

- ``detect(batch)``: the pipeline detector. Runs in the pipeline's worker thread
  on every micro-batch before commit, keeps (bounded) state for correlation and
  built-in sequence rules, counts fires per rule and hour, returns findings.
- ``evaluate(event)``: a stateless, side-effect-free verdict on one event for
  inline guards (the LLM gateway): pattern rules and stateless built-ins only;
  no state is read or written and nothing is counted.

Findings carry ``alert_type`` sigma / atr / builtin / correlation and the rule's
ATT&CK / ATLAS tags. Rules are evaluated in a fixed order, so the same events
give the same findings (and, through the alert recorder, the same alert ids).
Loading the bundled ATR set takes seconds, so it happens in the background at
start; the first batch waits for it rather than going unchecked.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from agentwatch.detect import atr
from agentwatch.detect.atr.matcher import AtrMatcher
from agentwatch.detect.atr.rules import AtrRule
from agentwatch.detect.builtin import BuiltinRule, default_rules
from agentwatch.detect.builtin.base import DETECTOR
from agentwatch.detect.pack import pack_rules
from agentwatch.detect.schema import detect_rules, rule_fires
from agentwatch.detect.settings import DetectionSettings
from agentwatch.events.model import BY_TIME, Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.runtime import settle_heap
from agentwatch.store.upsert import upsert
from agentwatch.store.writer_turns import turn_of

log = structlog.get_logger("agentwatch.detect")

HOUR = 3600
MAX_BACKLOG = 20_000  # agent-text events kept while the bundled ATR set loads (then counted as dropped)
AGENT_TEXT = frozenset({"llm_input", "llm_output", "tool_call", "tool_response", "tool_description"})
SIGMA_LEVELS = {"informational": 1, "low": 3, "medium": 5, "high": 7, "critical": 9}


def sigma_module() -> Any | None:
    """The Sigma compiler, when it is installed in this build."""
    try:
        from agentwatch.detect import sigma
    except ImportError:
        return None
    return sigma if hasattr(sigma, "SigmaEngine") else None


@dataclass
class RuleInfo:
    id: str
    format: str  # sigma | atr | pack | builtin
    title: str
    severity: int
    level: str
    status: str
    tags: list[str]
    description: str
    source: str
    yaml: str | None = None
    enabled: bool = True
    uploaded: bool = False
    is_correlation: bool = False
    origin: Any = field(default=None, repr=False)  # the loaded rule object

    def text(self) -> str | None:
        """The rule as YAML: as uploaded/loaded for Sigma, re-serialized for ATR-format rules."""
        if self.yaml is not None:
            return self.yaml
        raw = getattr(self.origin, "raw", None)
        if raw:
            import yaml as pyyaml

            return pyyaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "format": self.format,
            "title": self.title,
            "level": self.level,
            "severity": self.severity,
            "status": self.status,
            "tags": self.tags,
            "description": self.description,
            "source": self.source,
            "enabled": self.enabled,
            "uploaded": self.uploaded,
            "correlation": self.is_correlation,
        }


class RuleConflict(Exception):
    def __init__(self, rule_id: str) -> None:
        super().__init__(f"id: a rule with id {rule_id!r} already exists")
        self.rule_id = rule_id


class StoreFull(Exception):
    """The uploaded-rule store is at its configured capacity."""


class SigmaUnavailable(Exception):
    """This build has no Sigma compiler."""


@dataclass
class _Loaded:
    pack: AtrMatcher | None = None
    sigma: Any = None
    sigma_rules: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _alerts(rule: Any) -> bool:
    """A Sigma rule that only feeds a non-generating correlation raises no alert of its own."""
    return bool(getattr(rule, "alert", True))


def _word(severity: int) -> str:
    for word, value in (("critical", 9), ("high", 7), ("medium", 5), ("low", 3)):
        if severity >= value:
            return word
    return "informational"


def uploaded_infos(rules: list[Any], text: str) -> list[RuleInfo]:
    """The catalogue entries of the Sigma rules uploaded together in ``text``."""
    return [
        RuleInfo(
            r.id,
            "sigma",
            r.title,
            SIGMA_LEVELS.get(str(r.level or "medium").lower(), 5),
            str(r.level or "medium"),
            str(r.status or ""),
            list(r.tags or []),
            str(r.description or ""),
            "<upload>",
            text,
            uploaded=True,
            is_correlation=bool(r.is_correlation),
        )
        for r in rules
    ]


class DetectionEngine:
    name = DETECTOR

    def __init__(self, settings: DetectionSettings, db: Engine | None = None) -> None:
        self.settings = settings
        self.db = db
        self.builtins: list[BuiltinRule] = default_rules(settings)
        self.infos: dict[str, RuleInfo] = {}
        self.disabled: set[str] = set()
        self.failure: str | None = None
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.batches = 0
        self.events_seen = 0
        self.findings_total = 0
        # The bundled ATR set takes seconds to compile: it is built in the background while the
        # pipeline runs; agent-text events seen meanwhile wait in a bounded backlog and are
        # matched as soon as it is ready (see drain_backlog), so none goes unchecked.
        self.atr_matcher: AtrMatcher | None = None
        self.atr_ready = threading.Event()
        self.backlog: deque[Event] = deque()
        self.backlog_dropped = 0
        if settings.enabled and settings.atr_bundled:
            threading.Thread(target=self._build_atr, name="agentwatch-atr-load", daemon=True).start()
        else:
            self.atr_ready.set()

    def _build_atr(self) -> None:
        try:
            matcher = atr.bundled_matcher()
        except Exception as exc:
            log.exception("detect.atr_load_failed")
            self.failure = f"atr: {type(exc).__name__}: {exc}"[:500]
            self.atr_ready.set()
            return
        with self._state_lock:
            self.atr_matcher = matcher
        settle_heap()  # the compiled set lives as long as the process: keep it out of collections
        self.atr_ready.set()
        log.info("detect.atr_ready", rules=len(matcher.rules), backlog=len(self.backlog))

    def drain_backlog(self) -> list[Finding]:
        """Findings of the bundled ATR set for the events that arrived while it was loading."""
        with self._state_lock:
            pending, self.backlog = list(self.backlog), deque()
            matcher = self.atr_matcher
        if matcher is None or not pending:
            return []
        out: list[Finding] = []
        for event in pending:
            out.extend(self._atr_findings(matcher, "atr", event, atr.views_of(event)))
        if out:
            self.findings_total += len(out)
            self._count(out)
        return out

    # -- loading ---------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._loaded is not None

    def ensure_loaded(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._load_lock:
            if self._loaded is None:
                try:
                    self._loaded = self._load()
                    self.failure = None
                except Exception as exc:
                    log.exception("detect.load_failed")
                    self.failure = f"{type(exc).__name__}: {exc}"[:500]
                    self._loaded = _Loaded(errors=[("engine", self.failure)])
            return self._loaded

    def _load(self) -> _Loaded:
        s = self.settings
        out = _Loaded()
        infos: dict[str, RuleInfo] = {}
        atr_rules: list[AtrRule] = []
        if s.atr_bundled:
            atr_rules.extend(r for r in atr.bundled_rules() if r.active)
        extra: list[AtrRule] = []
        for directory in s.atr_rules_dirs:
            found, errors = atr.load_dir(directory)
            extra.extend(found)
            out.errors.extend(errors)
        pack = pack_rules() if s.pack else []
        if pack or extra:
            out.pack = AtrMatcher([*pack, *extra])
        for rule, fmt in [*((r, "atr") for r in atr_rules), *((r, "pack") for r in pack), *((r, "atr") for r in extra)]:
            infos[rule.id] = RuleInfo(
                rule.id,
                fmt,
                rule.title,
                rule.severity,
                rule.severity_word,
                rule.status,
                rule.tags,
                rule.description,
                rule.source,
                origin=rule,
            )
        for b in self.builtins:
            infos[b.id] = RuleInfo(
                b.id,
                "builtin",
                b.title,
                b.severity,
                _word(b.severity),
                "stable",
                list(b.tags),
                b.description,
                "agentwatch.detect.builtin",
            )
        flags, uploads = self._stored_rules()
        sigma = sigma_module()
        if sigma is not None:
            rules = []
            for directory in s.sigma_rules_dirs:
                found, errors = sigma.load_path(directory)
                rules.extend(found)
                out.errors.extend(errors)
            uploaded_ids: set[str] = set()
            for text in dict.fromkeys(uploads.values()):
                try:
                    found = sigma.load_rule(text, "<upload>")
                except sigma.SigmaLoadError as exc:
                    out.errors.append(("<upload>", str(exc)))
                    continue
                rules.extend(found)
                uploaded_ids.update(r.id for r in found)
            # no Sigma rule loaded: no per-event Sigma work at all
            out.sigma = sigma.SigmaEngine(rules) if rules else None
            out.errors.extend((p.rule_id, p.reason) for p in getattr(out.sigma, "problems", None) or [])
            for r in rules:
                out.sigma_rules[r.id] = r
                sev = SIGMA_LEVELS.get(str(r.level or "medium").lower(), 5)
                infos[r.id] = RuleInfo(
                    r.id,
                    "sigma",
                    r.title,
                    sev,
                    str(r.level or "medium"),
                    str(r.status or ""),
                    list(r.tags or []),
                    str(r.description or ""),
                    str(r.source),
                    r.yaml,
                    uploaded=r.id in uploaded_ids,
                    is_correlation=bool(r.is_correlation),
                )
        disabled = {rid for rid, enabled in flags.items() if not enabled}
        for rid, info in infos.items():
            info.enabled = rid not in disabled
        if out.sigma is not None:
            for rid in disabled & set(out.sigma_rules):
                out.sigma.set_enabled(rid, False)
        self.infos = infos
        self.disabled = disabled
        log.info("detect.loaded", rules=len(infos), errors=len(out.errors))
        return out

    def _stored_rules(self) -> tuple[dict[str, bool], dict[str, str]]:
        if self.db is None:
            return {}, {}
        with self.db.connect() as conn:
            rows = conn.execute(
                select(detect_rules.c.rule_id, detect_rules.c.enabled, detect_rules.c.uploaded, detect_rules.c.yaml)
            ).all()
        return {r.rule_id: bool(r.enabled) for r in rows}, {r.rule_id: r.yaml for r in rows if r.uploaded}

    def reload(self) -> None:
        """Rebuild the rule sets (after an upload); correlation state starts over."""
        with self._load_lock:
            self._loaded = self._load()

    # -- matching --------------------------------------------------------
    def _pattern_findings(self, loaded: _Loaded, event: Event, *, backlog: bool) -> list[Finding]:
        """ATR and pack findings for one event; with ``backlog``, agent-text events seen while the
        bundled ATR set is still loading are kept to be matched when it is ready."""
        views = atr.views_of(event)
        if not views:
            return []
        out: list[Finding] = []
        matcher = self.atr_matcher
        if matcher is not None:
            out.extend(self._atr_findings(matcher, "atr", event, views))
        elif backlog and not self.atr_ready.is_set() and any(v.kind in AGENT_TEXT for v in views):
            if len(self.backlog) < MAX_BACKLOG:
                self.backlog.append(event)
            else:
                self.backlog_dropped += 1
        if loaded.pack is not None:
            out.extend(self._atr_findings(loaded.pack, "pack", event, views))
        return out

    def _atr_findings(self, matcher: AtrMatcher, fmt: str, event: Event, views: list[Any]) -> list[Finding]:
        # bundled ATR rules are about agent text: their catch-all ``content`` must not scan paths or command lines
        scope = [v for v in views if v.kind in AGENT_TEXT] if fmt == "atr" else views
        if not scope:
            return []
        out: list[Finding] = []
        for rule in matcher.match_views(scope):
            if rule.id in self.disabled:
                continue
            out.append(
                Finding(
                    detector=DETECTOR,
                    rule_id=rule.id,
                    title=rule.title,
                    severity=rule.severity,
                    events=[event],
                    alert_type="atr",
                    message=rule.title,
                    tags=list(rule.tags),
                    session_id=event.session_id,
                    ts=event.ts,
                    details={
                        "format": fmt,
                        "category": rule.category,
                        "subcategory": rule.subcategory,
                        "source": rule.source,
                    },
                )
            )
        return out

    def _sigma_finding(self, rule: Any, events: list[Event], correlation: bool) -> Finding:
        sev = SIGMA_LEVELS.get(str(rule.level or "medium").lower(), 5)
        return Finding(
            detector=DETECTOR,
            rule_id=rule.id,
            title=rule.title,
            severity=sev,
            events=list(events),
            alert_type="correlation" if correlation else "sigma",
            message=rule.title,
            tags=[str(t).lower() for t in rule.tags or []],
            session_id=events[-1].session_id if events else None,
            ts=max((e.ts for e in events), default=None),
            details={"format": "sigma", "level": rule.level, "events": len(events)},
        )

    def evaluate(self, event: Event) -> list[Finding]:
        """Stateless verdict on one event: pattern rules and stateless built-ins; nothing is remembered."""
        loaded = self.ensure_loaded()
        if not self.atr_ready.is_set():  # an inline guard waits for the full rule set
            self.atr_ready.wait(timeout=120)
        out = self._pattern_findings(loaded, event, backlog=False)
        if loaded.sigma is not None:
            out.extend(self._sigma_finding(r, [event], False) for r in loaded.sigma.match(event) if _alerts(r))
        for b in self.builtins:
            if not b.stateful and b.id not in self.disabled:
                out.extend(b.check(event))
        return out

    def detect(self, batch: Sequence[Event]) -> list[Finding]:
        """Pipeline path: every rule, stateful ones included; counts fires per rule and hour."""
        if not self.settings.enabled or not batch:
            return []
        loaded = self.ensure_loaded()
        out: list[Finding] = []
        with self._state_lock:
            builtins = [b for b in self.builtins if b.id not in self.disabled]
            for event in sorted(batch, key=BY_TIME):
                out.extend(self._pattern_findings(loaded, event, backlog=True))
                if loaded.sigma is not None:
                    matched = loaded.sigma.match(event)
                    out.extend(self._sigma_finding(r, [event], False) for r in matched if _alerts(r))
                    for rule, events in loaded.sigma.observe(event, matched):
                        out.append(self._sigma_finding(rule, events, True))
                for b in builtins:
                    found = b.observe(event)
                    if found:
                        out.extend(found)
            self.batches += 1
            self.events_seen += len(batch)
            self.findings_total += len(out)
        if out:
            self._count(out)
        return out

    # -- fire counts -----------------------------------------------------
    def _count(self, findings: list[Finding]) -> None:
        if self.db is None:
            return
        tally: Counter[tuple[str, int]] = Counter()
        for f in findings:
            ts = f.ts if f.ts is not None else time.time()
            tally[(f.rule_id[:256], int(ts // HOUR))] += 1
        rows = [{"rule_id": r, "hour": h, "count": n} for (r, h), n in sorted(tally.items())]
        try:
            with turn_of(self.db), self.db.begin() as conn:
                upsert(conn, rule_fires, rows, ["rule_id", "hour"], {"count": lambda t, ex: t.c.count + ex.count})
        except Exception:  # counting must never lose the batch's findings
            log.exception("detect.count_failed")

    def fire_counts(self, now: float | None = None) -> dict[str, int]:
        """Fires per rule over the last 24 hours (hours of event time)."""
        if self.db is None:
            return {}
        first = int((now or time.time()) // HOUR) - 23
        out: dict[str, int] = {}
        with self.db.connect() as conn:
            for rid, n in conn.execute(
                select(rule_fires.c.rule_id, rule_fires.c.count).where(rule_fires.c.hour >= first)
            ):
                out[rid] = out.get(rid, 0) + int(n)
        return out

    def timeline(self, rule_id: str, now: float | None = None) -> list[dict[str, Any]]:
        """24 hourly buckets, oldest first, zero-filled."""
        from agentwatch.events.model import iso

        last = int((now or time.time()) // HOUR)
        counts: dict[int, int] = {}
        if self.db is not None:
            with self.db.connect() as conn:
                for hour, n in conn.execute(
                    select(rule_fires.c.hour, rule_fires.c.count).where(
                        rule_fires.c.rule_id == rule_id, rule_fires.c.hour >= last - 23
                    )
                ):
                    counts[int(hour)] = int(n)
        return [{"hour": iso(h * HOUR), "count": counts.get(h, 0)} for h in range(last - 23, last + 1)]

    # -- rule management ------------------------------------------------
    def set_enabled(self, rule_id: str, enabled: bool) -> RuleInfo:
        loaded = self.ensure_loaded()
        info = self.infos[rule_id]
        now = time.time()
        if self.db is not None:
            with self.db.begin() as conn:
                upsert(
                    conn,
                    detect_rules,
                    [
                        {
                            "rule_id": rule_id,
                            "format": info.format,
                            "enabled": enabled,
                            "uploaded": False,
                            "title": info.title[:1000],
                            "yaml": "",
                            "created_at": now,
                            "updated_at": now,
                        }
                    ],
                    ["rule_id"],
                    {"enabled": lambda t, ex: ex.enabled, "updated_at": lambda t, ex: ex.updated_at},
                )
        if enabled:
            self.disabled.discard(rule_id)
        else:
            self.disabled.add(rule_id)
        info.enabled = enabled
        if loaded.sigma is not None and rule_id in loaded.sigma_rules:
            loaded.sigma.set_enabled(rule_id, enabled)
        return info

    def upload_sigma(self, text: str, *, dry_run: bool = False) -> list[RuleInfo]:
        """Validate (and unless ``dry_run`` store and activate) uploaded Sigma YAML.

        Raises the Sigma module's SigmaLoadError (with line and column), RuleConflict,
        StoreFull or SigmaUnavailable."""
        sigma = sigma_module()
        if sigma is None:
            raise SigmaUnavailable("sigma: this build has no Sigma compiler")
        self.ensure_loaded()
        rules = sigma.load_rule(text, "<upload>")
        seen: set[str] = set()
        for r in rules:
            if r.id in self.infos or r.id in seen:
                raise RuleConflict(r.id)
            seen.add(r.id)
        infos = uploaded_infos(rules, text)
        if dry_run:
            return infos
        now = time.time()
        if self.db is None:
            raise StoreFull("rules: this engine has no store for uploaded rules")
        try:
            self._store_upload(text, rules, now)
        except IntegrityError:  # a concurrent upload of the same id won the race
            raise RuleConflict(rules[0].id) from None
        self.reload()
        return infos

    def _store_upload(self, text: str, rules: list[Any], now: float) -> None:
        assert self.db is not None
        with self.db.begin() as conn:
            rows = conn.execute(select(detect_rules.c.yaml).where(detect_rules.c.uploaded.is_(True))).scalars().all()
            used = sum(len(y.encode()) for y in dict.fromkeys(rows))
            if len(rows) + len(rules) > self.settings.max_uploaded_rules:
                raise StoreFull(f"rules: the upload store holds at most {self.settings.max_uploaded_rules} rules")
            if used + len(text.encode()) > self.settings.max_upload_bytes:
                raise StoreFull(f"yaml: the upload store holds at most {self.settings.max_upload_bytes} bytes")
            conn.execute(
                detect_rules.insert(),
                [
                    {
                        "rule_id": r.id,
                        "format": "sigma",
                        "enabled": True,
                        "uploaded": True,
                        "title": r.title[:1000],
                        "yaml": text,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for r in rules
                ],
            )

    # -- introspection ---------------------------------------------------
    def rules(self) -> list[RuleInfo]:
        self.ensure_loaded()
        return sorted(self.infos.values(), key=lambda r: (r.format, r.id))

    def costs(self) -> dict[str, dict[str, Any]]:
        loaded = self.ensure_loaded()
        out: dict[str, dict[str, Any]] = {}
        for matcher in (self.atr_matcher, loaded.pack):
            if matcher is not None:
                out.update(matcher.costs())
        if loaded.sigma is not None:
            out.update(loaded.sigma.costs())
        return out

    def health(self) -> dict[str, Any]:
        loaded = self._loaded
        by_format = Counter(i.format for i in self.infos.values())
        status = "degraded" if self.failure else ("ok" if loaded is not None else "loading")
        return {
            "status": status,
            "error": self.failure,
            "rules": dict(sorted(by_format.items())),
            "disabled": len(self.disabled),
            "sigma_available": sigma_module() is not None,
            "load_errors": len(loaded.errors) if loaded else 0,
            "atr": "off"
            if not (self.settings.enabled and self.settings.atr_bundled)
            else ("ready" if self.atr_matcher is not None else ("failed" if self.atr_ready.is_set() else "loading")),
            "atr_backlog": len(self.backlog),
            "atr_backlog_dropped": self.backlog_dropped,
            "state_entries": sum(b.state_size() for b in self.builtins),
            "batches": self.batches,
            "events": self.events_seen,
            "findings": self.findings_total,
        }
