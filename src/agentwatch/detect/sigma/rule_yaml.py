"""Reading untrusted Sigma rule YAML: bounded nesting, no aliases, dates kept as strings.

``yaml.safe_load`` recurses once per nesting level (a deep document exhausts the stack),
expands aliases, turns ``2026-99-99`` into an exception and ``2026-01-02`` into a date
object, and converts integers of any length. Rules come from users, so this reader
refuses what a rule never needs and names the field of anything it cannot read.
pySigma reads ``date`` and ``modified`` strings itself.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_DEPTH = 64  # nested mappings/lists in one document (SigmaHQ needs 5)
MAX_INT_DIGITS = 4300  # Python's own limit for int(str)
_SURROGATE = re.compile("[\ud800-\udfff]")


_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _BadScalar(ValueError):
    """A scalar the reader refuses; the message is shown after the field's path."""


class RuleYamlError(yaml.MarkedYAMLError):
    """A rule-level YAML problem (too deep, an alias, an unreadable scalar): ``problem`` names the field."""


class _RuleLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for untrusted rules: bounded nesting, no aliases, dates kept as strings.

    The composer is recursive (one Python frame group per level), so the depth is
    checked before a nested node is composed, not after a RecursionError.
    """

    yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []
        self._open = 0  # mappings/sequences being composed
        self._paths: dict[int, tuple[str, ...]] = {}  # id(scalar node) -> its field path

    def _where(self, path: tuple[str, ...] | list[str]) -> str:
        out = ""
        for part in path:
            out += part if part.startswith("[") or not out else "." + part
        return out or "document"

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise RuleYamlError(
                problem="aliases (*name) are not supported in Sigma rules", problem_mark=event.start_mark
            )
        if isinstance(index, yaml.ScalarNode):
            part = str(index.value)[:64]
        elif isinstance(index, int):
            part = f"[{index}]"
        else:
            part = ""  # the document, or a mapping key (named by its mapping)
        collection = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if collection and self._open >= MAX_DEPTH:
            top = self._where([p for p in self._path if p][:1])
            raise RuleYamlError(problem=f"{top}: nested deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark)
        self._path.append(part)
        self._open += collection
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open -= collection
            self._path.pop()
        if isinstance(node, yaml.ScalarNode):
            self._paths[id(node)] = tuple(p for p in [*self._path, part] if p)
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            where = self._where(self._paths.get(id(node), ()))
            kind = str(node.tag).rsplit(":", 1)[-1]
            problem = str(exc) if isinstance(exc, _BadScalar) else f"not a valid {kind}"
            raise RuleYamlError(problem=f"{where}: {problem}", problem_mark=node.start_mark) from None

    def construct_yaml_int(self, node: Any) -> int:
        value = self.construct_scalar(node)
        if sum(c.isdigit() for c in str(value)) > MAX_INT_DIGITS:
            raise _BadScalar(f"integer longer than {MAX_INT_DIGITS} digits")
        return super().construct_yaml_int(node)

    def construct_yaml_str(self, node: Any) -> str:
        value = super().construct_yaml_str(node)
        # a "\uD800" escape gives a lone surrogate: not text, and nothing downstream can encode it
        if _SURROGATE.search(value):
            raise _BadScalar("contains a lone surrogate (\\uD800-\\uDFFF), which is not valid Unicode text")
        return value


_RuleLoader.add_constructor("tag:yaml.org,2002:int", _RuleLoader.construct_yaml_int)
_RuleLoader.add_constructor("tag:yaml.org,2002:str", _RuleLoader.construct_yaml_str)


def load_yaml(text: str) -> list[Any]:
    """Every YAML document of ``text``, read as rules are read; raises ``yaml.YAMLError`` only."""
    loader = _RuleLoader(text)
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    finally:
        loader.dispose()
