"""Load Sigma YAML (rules, correlations, filters) with pySigma; report errors with a position.

Uploads and files go through :func:`load_rule`: YAML errors carry the line and column
from the YAML parser; rule errors (unknown modifier, bad condition, unmapped field)
carry the position of the offending text when it can be found in the document.
Each rule is also compiled once against the field map, so an unmapped field is
reported here, at load time, and never silently matched later.

Rules are untrusted: the YAML reader refuses documents nested deeper than
:data:`~agentwatch.detect.sigma.rule_yaml.MAX_DEPTH` and aliases, keeps dates as strings (pySigma reads ``date`` and
``modified`` itself), and turns a scalar it cannot convert (``!!int x``, an integer
of thousands of digits) into an error naming the field; the fields the code relies
on are type-checked before pySigma sees them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaRule as PySigmaRule

from agentwatch.detect.fieldmap import DEFAULT, FieldMap
from agentwatch.detect.sigma.policy import RULE_POLICY
from agentwatch.detect.sigma.rule_yaml import RuleYamlError, load_yaml

MAX_RULE_BYTES = 256 * 1024  # one upload
MAX_FILE_BYTES = 4 * 1024 * 1024  # one file of a trusted rule directory
MAX_DOCUMENTS = 64
MAX_FILES = 20_000
RULE_NAMESPACE = uuid.UUID("6f1c6c8e-3f7a-4c1e-9a51-5a8f2d0b7e11")


class SigmaLoadError(Exception):
    """A rule could not be loaded; ``line``/``column`` are 1-based when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, source: str = "<upload>"):
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        where = f"{source}:{line}:{column}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(eq=False)
class SigmaRule:
    """One loaded rule (detection, correlation or filter) with its metadata and YAML."""

    id: str
    title: str
    level: str
    status: str
    tags: list[str]
    logsource: dict
    yaml: str
    source: str
    description: str
    is_correlation: bool
    kind: str = "detection"  # detection | correlation | filter
    name: str | None = None
    author: str | None = None
    references: list[str] = field(default_factory=list)
    # False when the rule only feeds a correlation whose ``generate`` is false (spec default).
    alert: bool = True
    parsed: Any = field(default=None, repr=False)  # the pySigma object

    def __hash__(self) -> int:
        return hash(self.id)


def _enum_name(value: Any, default: str) -> str:
    if value is None:
        return default
    name = getattr(value, "name", None)
    return str(name).lower() if name else str(value).lower()


def _logsource(obj: Any) -> dict:
    ls = getattr(obj, "logsource", None)
    if ls is None:
        return {}
    return {k: v for k, v in (("product", ls.product), ("category", ls.category), ("service", ls.service)) if v}


def _wrap(obj: Any, text: str, source: str) -> SigmaRule:
    if isinstance(obj, SigmaCorrelationRule):
        kind = "correlation"
    elif isinstance(obj, SigmaFilter):
        kind = "filter"
    else:
        kind = "detection"
    rule_id = str(obj.id) if obj.id else str(uuid.uuid5(RULE_NAMESPACE, f"{source}:{obj.name or obj.title}"))
    return SigmaRule(
        id=rule_id,
        title=obj.title or "",
        level=_enum_name(obj.level, "medium"),
        status=_enum_name(obj.status, "experimental"),
        tags=[str(t) for t in (obj.tags or [])],
        logsource=_logsource(obj),
        yaml=text,
        source=source,
        description=obj.description or "",
        is_correlation=kind == "correlation",
        kind=kind,
        name=obj.name,
        author=obj.author,
        references=list(obj.references or []),
        parsed=obj,
    )


def locate(text: str, needle: str | None) -> tuple[int | None, int | None]:
    """1-based line/column of the first occurrence of ``needle`` in ``text``."""
    if not needle:
        return None, None
    index = text.find(needle)
    if index < 0:
        return None, None
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


_QUOTED = re.compile(r"'([^']{1,200})'")
_MODIFIER_CLASS = re.compile(r"\b(Sigma\w+Modifier)\b")
_OBJECT_REPR = re.compile(r"'?<sigma\.types\.Sigma(\w+) object at 0x[0-9a-f]+>'?")


def _needle(exc: BaseException) -> str | None:
    """What to search in the YAML to place a pySigma error (pySigma gives no line)."""
    message = _OBJECT_REPR.sub("", str(exc))
    lower = message.lower()
    if "modifier" in lower:
        m = _MODIFIER_CLASS.search(message)  # "Modifier SigmaContainsModifier incompatible to value type of ..."
        if m and m.group(1) in reverse_modifier_mapping:
            return "|" + reverse_modifier_mapping[m.group(1)]
        m = _QUOTED.search(message)
        if m:
            return "|" + m.group(1)
    if "condition" in lower or "detection '" in lower or "selector" in lower:
        return "condition"
    if "timespan" in lower:
        return "timespan"
    if "logsource" in lower:
        return "logsource"
    if "correlation" in lower:
        return "correlation"
    m = _QUOTED.search(message)
    return m.group(1) if m else None


def _error(message: str, text: str, source: str, needle: str | None) -> SigmaLoadError:
    line, column = locate(text, needle)
    # pySigma shows some values as a Python object repr: name the value kind instead (``null``)
    message = _OBJECT_REPR.sub(lambda m: m.group(1).lower(), message)
    return SigmaLoadError(message, line, column, source)


def parse_documents(text: str, source: str, max_bytes: int = MAX_RULE_BYTES) -> list[Any]:
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise SigmaLoadError(f"rule text larger than {max_bytes} bytes", source=source)
    try:
        docs = [d for d in load_yaml(text) if d is not None]
    except RuleYamlError as exc:
        mark = exc.problem_mark
        raise SigmaLoadError(str(exc.problem), mark.line + 1, mark.column + 1, source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None:
            raise SigmaLoadError(f"invalid YAML: {problem}", mark.line + 1, mark.column + 1, source) from None
        raise SigmaLoadError(f"invalid YAML: {problem}", source=source) from None
    if not docs:
        raise SigmaLoadError("no YAML document", 1, 1, source)
    if len(docs) > MAX_DOCUMENTS:
        raise SigmaLoadError(f"more than {MAX_DOCUMENTS} YAML documents", source=source)
    for doc in docs:
        if not isinstance(doc, dict):
            raise SigmaLoadError("a Sigma document must be a YAML mapping", 1, 1, source)
        problem = _type_problem(doc)
        if problem is not None:
            message, needle = problem
            raise _error(message, text, source, needle)
    return [_normalise(d) for d in docs]


_STRING_FIELDS = ("id", "title", "name", "level", "status", "description", "author", "license", "taxonomy")
_DATE_FIELDS = ("date", "modified")
_CORRELATION_STRINGS = ("type", "timespan")


def _strings(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _type_problem(doc: dict) -> tuple[str, str] | None:
    """(message naming the field, text to locate) for a field of the wrong type, before pySigma sees it.

    pySigma checks most fields itself; these are the ones it (or the compiler) would
    otherwise fail on with a bare Python error (``id: 5``, ``correlation.type: 5``).
    """
    for key in _STRING_FIELDS:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            return f"{key}: must be a string", f"{key}:"
    for key in _DATE_FIELDS:
        if doc.get(key) is not None and not isinstance(doc[key], (str, date)):
            return f"{key}: must be a date (yyyy-mm-dd)", f"{key}:"
    corr = doc.get("correlation")
    if isinstance(corr, dict):
        for key in _CORRELATION_STRINGS:
            if corr.get(key) is not None and not isinstance(corr[key], str):
                return f"correlation.{key}: must be a string", f"{key}:"
        for key in ("rules", "group-by"):
            if corr.get(key) is not None and not _strings(corr[key]):
                return f"correlation.{key}: must be a string or a list of strings", f"{key}:"
        cond = corr.get("condition")
        if isinstance(cond, str):  # the extended (boolean) condition of temporal types
            from agentwatch.detect.sigma.rules import condition_problem

            message = condition_problem(cond, "correlation.condition")
            if message is not None:
                return message, "condition"
        if isinstance(cond, dict):
            percentile = cond.get("percentile")
            if percentile is not None and (isinstance(percentile, bool) or not isinstance(percentile, (int, str))):
                return "correlation.condition.percentile: must be an integer", "percentile"
            if cond.get("field") is not None and not _strings(cond["field"]):
                return "correlation.condition.field: must be a string or a list of strings", "field"
    for section in ("detection", "filter"):
        block = doc.get(section)
        if isinstance(block, dict):
            for name, item in block.items():
                problem = _item_problem(f"{section}.{name}", item)
                if problem is not None:
                    return problem
    return None


def _item_problem(where: str, item: Any) -> tuple[str, str] | None:
    """Field names of a detection item are strings; ``|re`` values are strings."""
    maps = (
        [item] if isinstance(item, dict) else [m for m in item if isinstance(m, dict)] if isinstance(item, list) else []
    )
    for mapping in maps:
        for key, value in mapping.items():
            if key is not None and not isinstance(key, str):
                return f"{where}: field name {key!r} must be a string", where.rsplit(".", 1)[-1] + ":"
            if isinstance(key, str) and "re" in key.split("|")[1:]:
                values = value if isinstance(value, list) else [value]
                if not all(isinstance(v, str) for v in values):
                    return f"{where}.{key}: a regular expression must be a string", key
    return None


def _normalise(doc: dict) -> dict:
    """Spelling the spec allows but pySigma 2.0 lacks: ``utf16le`` is an alias of ``wide``."""
    detection = doc.get("detection")
    if isinstance(detection, dict):
        doc["detection"] = {_alias(k): _normalise_items(v) for k, v in detection.items()}
    flt = doc.get("filter")
    if isinstance(flt, dict):
        doc["filter"] = {_alias(k): _normalise_items(v) for k, v in flt.items()}
    return doc


def _alias(key: Any) -> Any:
    return key.replace("|utf16le", "|wide") if isinstance(key, str) else key


def _normalise_items(value: Any) -> Any:
    if isinstance(value, dict):
        return {_alias(k): v for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_items(v) for v in value]
    return value


def load_rule(
    text: str, source: str = "<upload>", *, fieldmap: FieldMap | None = None, max_bytes: int = MAX_RULE_BYTES
) -> list[SigmaRule]:
    """Parse one YAML text (one or several documents) into rules; raises :class:`SigmaLoadError`."""
    docs = parse_documents(text, source, max_bytes)
    try:
        collection = SigmaCollection.from_dicts(
            docs, collect_filters=True, resolve_references=False, policy=RULE_POLICY
        )
    except SigmaError as exc:
        raise _error(str(exc).split(" in /")[0], text, source, _needle(exc)) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SigmaLoadError(f"invalid Sigma rule: {exc}", source=source) from None
    rules = [_wrap(r, text, source) for r in [*collection.rules, *collection.filters]]
    if not rules:
        raise SigmaLoadError("no Sigma rule in the document", 1, 1, source)
    from agentwatch.detect.sigma.rules import check_rule  # compile once: unmapped fields fail here

    for rule in rules:
        problem = check_rule(rule, fieldmap or DEFAULT)
        if problem is not None:
            message, needle = problem
            raise _error(message, text, source, needle)
    return rules


def load_path(
    path: str | Path,
    *,
    fieldmap: FieldMap | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[SigmaRule], list[tuple[str, str]]]:
    """Every ``*.yml``/``*.yaml`` under ``path``: (rules, [(file, reason)]); never raises per file."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml"))
    rules: list[SigmaRule] = []
    failures: list[tuple[str, str]] = []
    total = min(len(files), MAX_FILES)
    for done, file in enumerate(files[:MAX_FILES], 1):
        if progress is not None:
            progress(done, total)
        try:
            text = file.read_text(encoding="utf-8")
            rules.extend(load_rule(text, str(file), fieldmap=fieldmap, max_bytes=MAX_FILE_BYTES))
        except SigmaLoadError as exc:
            failures.append((str(file), exc.message if exc.line is None else f"{exc.message} (line {exc.line})"))
        except (OSError, UnicodeDecodeError) as exc:
            failures.append((str(file), f"unreadable: {exc}"))
    if len(files) > MAX_FILES:
        failures.append((str(root), f"more than {MAX_FILES} files; the rest were skipped"))
    return rules, failures


__all__ = ["PySigmaRule", "SigmaLoadError", "SigmaRule", "load_path", "load_rule"]
