"""A hunt definition: one YAML file, read safely and checked field by field.

A file holds one mapping: ``id`` (a slug), ``title``, ``hypothesis``, ``mitre`` (ATT&CK ids:
``T1059``, ``T1059.001``, a tactic ``TA0002``), optional ``indicators`` (values the matched
events must name as an entity or contain as text), ``query`` (the filters of ``GET
/api/v1/events``, checked by :class:`agentwatch.detect.hunt.HuntFilters`, the same model that
checks the LLM hunt's filters), ``window`` (how far back, e.g. ``24h``), ``schedule``
(``manual``, or an interval such as ``15m``, at least ``hunts.min_interval_s``) and ``alert``
(``{severity: high}``: a run with matches raises one alert).

Untrusted text: the file is read up to ``hunts.max_file_bytes``, parsed by the bounded safe
loader the Sigma rules use (no aliases, no Python objects, bounded nesting), and every field
has a size cap. A problem is a :class:`DefinitionError` naming the file, the line and the rule.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from agentwatch.alerts.model import SEVERITY_WORDS
from agentwatch.api.text_rules import UNPRINTABLE, printable_name, printable_title
from agentwatch.detect.coverage import TACTICS
from agentwatch.detect.hunt import HuntFilters
from agentwatch.detect.sigma.rule_yaml import load_yaml

HUNT_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
TACTIC_IDS = frozenset(t.id for t in TACTICS)
DURATION = re.compile(r"(\d{1,7})([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_WINDOW_S = 90 * 86_400
MAX_INTERVAL_S = 30 * 86_400
MAX_ERRORS_PER_FILE = 20


def seconds(value: Any) -> float:
    """A duration: whole seconds (an integer) or ``<n><s|m|h|d>``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a duration such as 90s, 15m, 24h or 7d")
    if isinstance(value, int):  # clamped: an int past a float's range is just too long a duration
        return float(max(-(10**12), min(value, 10**12)))
    found = DURATION.fullmatch(value)
    if found is None:
        raise ValueError("must be a duration such as 90s, 15m, 24h or 7d")
    return float(int(found[1]) * UNITS[found[2]])


def shown(name: str) -> str:
    """A file name as answers and logs show it: bytes that are not UTF-8 and unprintable
    characters escaped (``\\xff``), so a name can neither break the JSON answer nor a log line."""
    return escaped(os.fsencode(name).decode("utf-8", "backslashreplace"))


def escaped(text: str) -> str:
    """``text`` with every unprintable character written as its escape (``\\n``, ``\\x1b``)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _mitre(value: str) -> str:
    if TECHNIQUE.fullmatch(value):
        return value
    if value in TACTIC_IDS:
        return value
    raise ValueError("must be an ATT&CK technique (T1059, T1059.001) or tactic id (TA0002)")


def _free_text(value: str) -> str:
    if UNPRINTABLE.search(value.replace("\n", " ").replace("\t", " ")):
        raise ValueError("must not contain control characters other than newlines and tabs")
    return value


MitreId = Annotated[str, Field(max_length=9), AfterValidator(_mitre)]
Indicator = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(printable_name)]


class AlertSpec(BaseModel):
    """Raise one alert (type ``hunt``, deduplicated per hunt) when a run matches."""

    model_config = ConfigDict(extra="forbid")
    severity: int = Field(description="0-10, or info, low, medium, high, critical")

    @field_validator("severity", mode="before")  # before: a lax int would take true as 1, 5.0 as 5
    @classmethod
    def _severity(cls, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= 10:
                raise ValueError("must be 0-10")
            return value
        if not isinstance(value, str) or value not in SEVERITY_WORDS:
            raise ValueError(f"must be 0-10 or one of {', '.join(sorted(SEVERITY_WORDS))}")
        return SEVERITY_WORDS[value]


class HuntDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=HUNT_ID, max_length=64)
    title: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable_title)]
    hypothesis: Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_free_text)]
    mitre: list[MitreId] = Field(default_factory=list, max_length=32)
    indicators: list[Indicator] = Field(default_factory=list, max_length=100)
    query: HuntFilters = Field(default_factory=HuntFilters)
    window: float | None = None
    schedule: float | None = None  # seconds between runs; None: manual
    alert: AlertSpec | None = None

    @field_validator("indicators")
    @classmethod
    def _indicators_once(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for v in value:
            if v in seen:  # it would be counted twice for every event it matches
                raise ValueError(f"each indicator at most once ({v[:64]!r} twice)")
            seen.add(v)
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float | None:
        if value is None:
            return None
        s = seconds(value)
        if not 60 <= s <= MAX_WINDOW_S:
            raise ValueError("must be between 1m and 90d")
        return s

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any, info: ValidationInfo) -> float | None:
        if value is None or value == "manual":
            return None
        s = seconds(value)
        least = float((info.context or {}).get("min_interval_s", 60.0))
        if not least <= s <= MAX_INTERVAL_S:
            raise ValueError(f"must be manual or an interval between {least:g}s (hunts.min_interval_s) and 30d")
        return s

    def window_s(self, default_s: float) -> float:
        if self.window is not None:
            return self.window
        if self.query.window_minutes is not None:
            return self.query.window_minutes * 60.0
        return default_s

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "hypothesis": self.hypothesis,
            "mitre": self.mitre,
            "indicators": self.indicators,
            "query": self.query.model_dump(exclude_none=True),
            "window_s": self.window,
            "schedule": {"interval_s": self.schedule} if self.schedule is not None else "manual",
            "alert": {"severity": self.alert.severity} if self.alert is not None else None,
        }


@dataclass
class DefinitionError:
    file: str
    line: int | None
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "error": self.error}


@dataclass
class Hunt:
    definition: HuntDefinition
    file: str
    digest: str  # sha256 of the definition's canonical JSON: what a run stores


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the deepest node of ``loc`` the YAML tree holds."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _problems(exc: ValidationError, text: str) -> list[tuple[int | None, str]]:
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)  # safe: the bounded loader read it already
    except yaml.YAMLError:
        tree = None
    out = []
    for err in exc.errors()[:MAX_ERRORS_PER_FILE]:
        loc = tuple(p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-"))
        where = escaped(".".join(str(p) for p in loc)[:128]) or "definition"
        msg = err["msg"].removeprefix("Value error, ")
        out.append((_line_of(tree, loc), f"{where}: {msg}"))
    return out


def parse(name: str, data: bytes, min_interval_s: float) -> Hunt | list[DefinitionError]:
    """One file's bytes as a hunt, or every problem found (file, line, rule)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [DefinitionError(name, None, f"file: not UTF-8 text (byte {exc.start})")]
    try:
        docs = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "unreadable YAML").replace("Sigma rules", "hunt definitions")
        return [DefinitionError(name, mark.line + 1 if mark else None, f"yaml: {problem}")]
    except yaml.YAMLError as exc:
        return [DefinitionError(name, None, f"yaml: {str(exc)[:200]}")]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return [DefinitionError(name, 1, "file: must hold one YAML document, a mapping of the hunt's fields")]
    try:
        hunt = HuntDefinition.model_validate(docs[0], context={"min_interval_s": min_interval_s})
    except ValidationError as exc:
        return [DefinitionError(name, line, problem) for line, problem in _problems(exc, text)]
    if hunt.window is not None and hunt.query.window_minutes is not None:
        line = _line_of(yaml.compose(text, Loader=yaml.SafeLoader), ("query", "window_minutes"))
        return [DefinitionError(name, line, "query.window_minutes: give the hunt's window once, in window")]
    digest = hashlib.sha256(orjson.dumps(hunt.as_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Hunt(hunt, name, digest)


def read(path: Path, max_bytes: int, min_interval_s: float) -> Hunt | list[DefinitionError]:
    """Read ``path`` (at most ``max_bytes``) and parse it."""
    name = shown(path.name)
    try:
        # non-blocking: a pipe or device swapped in after the listing must not hang the reader
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return [DefinitionError(name, None, "file: not a regular file, not read")]
            data = f.read(max_bytes + 1)
    except OSError as exc:
        return [DefinitionError(name, None, f"file: cannot be read ({exc.strerror or 'I/O error'})")]
    if len(data) > max_bytes:
        return [DefinitionError(name, None, f"file: larger than hunts.max_file_bytes ({max_bytes} bytes)")]
    return parse(name, data, min_interval_s)
