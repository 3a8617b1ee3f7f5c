"""Name-based ids agree with the standard library's UUID version 5."""

from __future__ import annotations

import random
import uuid

from agentwatch.events.ids import name_uuid, name_uuid_hex
from agentwatch.pipeline.stages import TRACE_NS, _trace_id
from agentwatch.sessions.codec import AOP_NS, aop_event_id


def test_name_uuid_equals_uuid5_for_any_name():
    rng = random.Random(5)
    alphabet = "abc/é\x1f 0123456789😀"
    for _ in range(500):
        ns = uuid.UUID(int=rng.getrandbits(128))
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert name_uuid(ns.bytes, name) == str(uuid.uuid5(ns, name))
        assert name_uuid_hex(ns.bytes, name) == uuid.uuid5(ns, name).hex


def test_trace_and_aop_ids_keep_their_published_derivation():
    # Stored ids must not change across versions: a resent AOP step is recognised by its id.
    assert aop_event_id("sess_abc123", 7) == str(uuid.uuid5(AOP_NS, "sess_abc123\x1f7"))
    assert _trace_id("process", "host-a", 42, 1.5) == uuid.uuid5(TRACE_NS, "process\x1fhost-a\x1f42\x1f1.5").hex
