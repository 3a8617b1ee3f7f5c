"""Finding the live honeytokens in a stored event, cheaply.

An event is searched as its stored JSON (bytes; every field at once: LLM messages, tool-call
arguments, file contents, HTTP bodies, command lines) for each run of ASCII letters and digits
as long as the shortest needle or longer. The runs are found at C speed, without a regex: the
text is translated to a mask (1 for a letter or digit, 0 otherwise) and ``bytes.find`` looks
for as many 1s as the shortest needle is long, then for the 0 ending the run. Only runs whose
length is a needle length are hashed, and a set lookup says whether the digest is a live
needle. The cost grows with the size of the event, not with the number of tokens, and an empty
index returns before looking (see :mod:`.generate` for why digests, not values, are matched).

JSON escapes glue a letter to the next run (a newline is ``\\n``, so ``"\\nAKIA…"`` reads
``nAKIA…``), and so do percent-encoding (``%2FAKIA…``), a Python byte escape (``\\x00AKIA…``)
and the colour codes of terminal output (``ESC[1mAKIA…``, ``ESC[01;31mESC[KAKIA…``, what
``grep --color`` prints around a match): a run right after a backslash is also tried without
its first one, three (``x``) or five (``u``) characters, after a ``%`` without its first two,
and after a ``[`` or ``;`` without its leading digits and the letter ending the colour code.
Each rule is anchored to the character before the run: other glued letters still make another run.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_WALK = 20_000  # nodes of an event visited to name the field holding a hit
PROMPT_ROLES = frozenset({"system", "developer"})  # messages holding an LLM request's system prompt
# byte -> 1 for an ASCII letter or digit, else 0
MASK = bytes(1 if i < 128 and chr(i).isalnum() else 0 for i in range(256))


@dataclass
class NeedleIndex:
    """Needle digests of the live tokens -> token id, and the lengths of the needles."""

    by_digest: dict[bytes, str] = field(default_factory=dict)
    lengths: frozenset[int] = frozenset()
    probe: bytes = b""  # as many 1s as the shortest needle is long; empty when there is none

    @classmethod
    def of(cls, needles: list[tuple[str, str, int]]) -> NeedleIndex:
        """From (token id, hex digest, needle length) triples."""
        by_digest = {bytes.fromhex(d): token for token, d, _ in needles}
        lengths = frozenset(n for _, _, n in needles)
        return cls(by_digest, lengths, b"\x01" * min(lengths) if lengths else b"")

    def __len__(self) -> int:
        return len(self.by_digest)

    def _candidates(self, text: bytes, start: int, run: bytes) -> Iterator[bytes]:
        yield run
        before = text[start - 1 : start]
        if before == b"\\":  # \n \t \r \b \f, \uXXXX, or (a Python repr) \xXX
            yield run[1:]
            if run[:1] == b"u":
                yield run[5:]
            elif run[:1] == b"x":
                yield run[3:]
        elif before == b"%":
            yield run[2:]
        elif before in (b"[", b";"):  # the end of a terminal colour code: ESC[1m, ESC[01;31m, ESC[K
            digits = len(run) - len(run.lstrip(b"0123456789"))
            if digits < len(run):
                yield run[digits + 1 :]

    def runs(self, text: bytes) -> Iterator[tuple[int, bytes]]:
        """(start, run) of each run of letters and digits at least as long as the shortest needle."""
        probe = self.probe
        if not probe:
            return
        mask = text.translate(MASK)
        pos = mask.find(probe)
        while pos >= 0:
            end = mask.find(b"\x00", pos + len(probe))
            if end < 0:
                end = len(mask)
            yield pos, text[pos:end]
            pos = mask.find(probe, end)

    def scan(self, text: bytes) -> dict[str, str]:
        """Token id -> the needle found (plain text, to name its field), for each live token in ``text``."""
        found: dict[str, str] = {}
        lengths = self.lengths
        by_digest = self.by_digest
        sha256 = hashlib.sha256
        for start, run in self.runs(text):
            for cand in self._candidates(text, start, run):
                if len(cand) in lengths:
                    token = by_digest.get(sha256(cand).digest())
                    if token is not None and token not in found:
                        found[token] = cand.decode()
        return found


def field_of(body: Any, needle: str) -> str | None:
    """The dotted path of the first string (or key) in ``body`` holding ``needle``
    (``data.messages.1.content``); ``event`` when none is found within :data:`MAX_WALK` nodes;
    None when it stands only in system prompts (the ``system`` or ``developer`` messages of an
    LLM request), where a canary is planted and every request of the agent carries it."""
    queue: deque[tuple[str, Any, bool]] = deque([("", body, False)])
    seen = 0
    planted = False
    while queue and seen < MAX_WALK:
        path, node, in_prompt = queue.popleft()
        seen += 1
        if isinstance(node, dict):
            in_prompt = in_prompt or (path.rsplit(".", 2)[-2:-1] == ["messages"] and node.get("role") in PROMPT_ROLES)
            for k, v in node.items():
                sub = f"{path}.{k}" if path else str(k)
                if needle in str(k):
                    return sub
                queue.append((sub, v, in_prompt))
        elif isinstance(node, list):
            queue.extend((f"{path}.{i}" if path else str(i), v, in_prompt) for i, v in enumerate(node))
        elif isinstance(node, str) and needle in node:
            if not in_prompt:
                return path or "event"
            planted = True
    return None if planted and not queue else "event"
