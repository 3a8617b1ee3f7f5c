"""Valid documents with parts replaced, removed or added by Hypothesis, for intake fuzzing.

What a sensor, an SDK or an attacker can send: text with control characters or NUL,
integers past 64 bits, deep structures, missing fields and unknown ones. The awkward
characters are drawn often, and the caller's ``hot`` paths (fields the store indexes) as
often as all the others together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

# Characters that have broken stores, parsers and logs
AWKWARD = "\x00\x01\x1f\x7f\n\r\t\u2028\ufeff\ufffd\U0001f600'\"\\%_"
plain = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
awkward = st.text(alphabet=st.sampled_from(AWKWARD), min_size=1, max_size=6)
text = plain | awkward | st.builds(str.__add__, plain, awkward)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def paths(doc: Any, keep: frozenset[str], prefix: tuple = ()) -> list[tuple]:
    """Every place in ``doc`` a value sits, but the top-level keys in ``keep``."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if prefix == () and k in keep:
                continue
            out.append((*prefix, k))
            out.extend(paths(v, keep, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, i))
            out.extend(paths(v, keep, (*prefix, i)))
    return out


def _mutate(draw: st.DrawFn, doc: dict[str, Any], hot: Sequence[tuple], keep: frozenset[str]) -> None:
    places = paths(doc, keep)
    path = draw(st.sampled_from(places) | st.sampled_from(hot) if places else st.sampled_from(hot))
    parent: Any = doc
    for step in path[:-1]:
        parent = _child(parent, step)
    key = path[-1]
    if not (isinstance(parent, dict) or (isinstance(parent, list) and isinstance(key, int) and key < len(parent))):
        return  # an earlier change left no place for this path
    action = draw(st.sampled_from(["text", "replace", "remove", "add"]))
    if action == "text":
        parent[key] = draw(text)
    elif action == "remove" and isinstance(parent, dict):
        parent.pop(key, None)
    elif action == "add" and isinstance(parent, dict):
        parent[draw(text)] = draw(values)
    else:
        parent[key] = draw(values)


def _child(parent: Any, step: Any) -> Any:
    """``parent[step]`` where there is one, else None."""
    if isinstance(parent, dict):
        return parent.get(step)
    if isinstance(parent, list) and isinstance(step, int) and step < len(parent):
        return parent[step]
    return None


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[dict], hot: Sequence[tuple], keep: frozenset[str]) -> dict[str, Any]:
    """One of ``seeds`` with one to four parts changed; the top-level keys in ``keep`` stay."""
    doc = json.loads(json.dumps(draw(st.sampled_from(list(seeds)))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        _mutate(draw, doc, hot, keep)
    return doc


def first_difference(got: Any, sent: Any, path: str = "") -> str | None:
    """Where ``got`` fails to hold what ``sent`` holds (an object may hold more keys).

    An integer past the 64-bit range is expected back as the nearest float: that is how
    the intake reads it (the event is kept)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return f"{path or '.'}: {got!r} is not an object"
        for k, v in sent.items():
            if k not in got:
                return f"{path}.{k}: missing"
            found = first_difference(got[k], v, f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return f"{path}: sent {sent!r}, read back {got!r}"
        for i, (g, v) in enumerate(zip(got, sent, strict=True)):
            found = first_difference(g, v, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(sent, int) and not isinstance(sent, bool) and not -(2**63) <= sent < 2**64:
        sent = float(sent)
    if got != sent or type(got) is not type(sent):
        return f"{path}: sent {sent!r}, read back {got!r}"
    return None


def encode(doc: Any) -> bytes:
    """JSON text for ``doc``; the standard library writes integers past 64 bits, orjson refuses to."""
    return json.dumps(doc, ensure_ascii=False).encode()
