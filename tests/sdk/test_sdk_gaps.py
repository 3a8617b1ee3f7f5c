"""Gaps in the SDK's spill hand-back and in forked children: a torn line of a partly replayed
spill file counted again when the rest was handed back and read by another client of the same
process, and a forked child that could not post through a transport of the user's making."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from agentwatch.sdk import AopClient
from agentwatch.sdk.transport import Transport
from tests.sdk.test_sdk_fork import run_forking_agent
from tests.sdk.test_sdk_hunt import FakeCollector, answer, stored, unreachable
from tests.sdk.test_sdk_robustness import aop_line

TORN = b'{"spec": "aop/1.0", "sess'


def first_half_then_down(n: int, body: bytes) -> bytes | None:
    """413 for the whole batch, 200 for its first half; then no answer at all (a collector going
    down mid-replay): the replay ends with one event delivered and the claim to be read from 0."""
    return {1: answer(413, b'{"error": {"message": "batch too large"}}'), 2: answer(200)}.get(n)


def first_then_down(n: int, body: bytes) -> bytes | None:
    """200 for the first batch, then no answer: the claim is handed back from its second line."""
    return answer(200) if n == 1 else None


# (batch_size, the collector's answers, a new spill file takes the name meanwhile, what the second
# client delivers: a whole file handed back holds the event delivered already, the rest does not)
HAND_BACKS = {
    "whole-file-as-spill-file": (10, first_half_then_down, False, [1, 2, 3]),
    "whole-file-left-as-claim": (10, first_half_then_down, True, [1, 2, 3, 4]),
    "rest-as-spill-file": (1, first_then_down, False, [2, 3]),
}


@pytest.mark.parametrize("case", HAND_BACKS, ids=list(HAND_BACKS))
def test_a_torn_line_of_a_claim_handed_back_is_counted_once_in_the_process(open_server, tmp_path, caplog, case):
    """A client claims the spill file, reads its torn line, delivers one event and closes while
    the collector is down: the claim is handed back (under the spill file's name, or, when a new
    spill file took that name meanwhile, as a claim of this process). A second client of the same
    process replays it and counted the torn line again: two for one line, and two warnings."""
    batch_size, reply, name_taken, expected = HAND_BACKS[case]
    caplog.set_level(logging.WARNING, "agentwatch.sdk")
    spill = tmp_path / "s.jsonl"
    session = f"sess_handback_{uuid.uuid4().hex}"
    good = [aop_line(session, n) for n in (1, 2, 3)]
    spill.write_bytes(b"\n".join([good[0], TORN, *good[1:]]) + b"\n")
    with FakeCollector(reply, "127.0.0.62") as fake:
        first = Transport(fake.url, spill_path=spill, batch_size=batch_size, max_retries=1, flush_interval=0.01)
        first.flush(10)  # returns after the failed attempt
        if name_taken:
            spill.write_bytes(aop_line(session, 4) + b"\n")  # spilled by another process meanwhile
        first.close(5)
    assert fake.events()[0]["sequence"] == 1 and first.stats["replayed"] == 1  # one event delivered, then down
    second = Transport(open_server.url, spill_path=spill, flush_interval=0.01)
    assert second.flush(10)
    second.close(5)
    assert [e["sequence"] for e in stored(open_server, session)["events"]] == expected
    assert first.stats["spill_malformed"] + second.stats["spill_malformed"] == 1
    assert len([r for r in caplog.records if "malformed line" in r.getMessage()]) == 1
    assert list(tmp_path.iterdir()) == []  # everything delivered, no claim left behind


# -- a transport factory: the user's own transport in every process -------------------------
ROUTED_TRANSPORT = """
import httpx

class ToCollector(httpx.HTTPTransport):
    '''The SDK's URL names a port where nothing listens: only through this transport do events
    reach the collector (as only a client certificate or a Unix socket would). Each request is
    written to a file, with the process that sent it.'''

    def handle_request(self, request):
        request.url = request.url.copy_with(port={port})
        with open("{journal}", "a") as fh:
            fh.write(f"post {{os.getpid()}}\\n")
        return super().handle_request(request)

def make_transport():
    with open("{journal}", "a") as fh:
        fh.write(f"made {{os.getpid()}}\\n")
    return ToCollector()
"""

FORKING_AGENT = """
aop = Client("forker", url="{url}", session_id="{session}", spill_path="{spill}",
             transport_factory={factory}, max_retries=2, backoff_base=0.01)
aop.thought("parent before fork")
assert aop.flush(10)
pid = os.fork()
if pid == 0:
    signal.alarm(30)
    aop.thought("child 1")
    aop.thought("child 2")
    report("child", aop, finish(aop), pid=os.getpid())
    os._exit(0)
_, status = os.waitpid(pid, 0)
aop.thought("parent after fork")
report("parent", aop, finish(aop), status=status, pid=os.getpid())
"""


def run_agent_with_factory(srv, tmp_path, session: str, factory: str, prelude: str = "") -> tuple[dict, dict, list]:
    """Run the forking agent with ``transport_factory=<factory>``; (parent, child, journal lines)."""
    journal = tmp_path / "journal.txt"
    port = httpx.URL(srv.url).port
    code = ROUTED_TRANSPORT.format(port=port, journal=journal) + prelude
    code += FORKING_AGENT.format(url=unreachable(), session=session, spill=tmp_path / "s.jsonl", factory=factory)
    got = run_forking_agent("sync", code)
    return got["parent"], got["child"], journal.read_text().split("\n")[:-1]


def test_a_forked_child_posts_through_a_transport_the_factory_makes_there(open_server, tmp_path):
    """A child could only post through a default transport: one that needs the user's client
    certificate or Unix socket could not reach the collector, and the child spilled. With
    ``transport_factory`` the parent's first transport and each child's come from the factory."""
    session = f"sess_factory_{uuid.uuid4().hex}"
    parent, child, journal = run_agent_with_factory(open_server, tmp_path, session, "make_transport")
    assert parent["status"] == 0 and parent["flushed"] and child["flushed"]
    assert child["stats"]["sent"] == 2 and child["stats"]["spilled"] == 0  # delivered, not spilled
    assert parent["stats"]["sent"] == 2 and parent["stats"]["spilled"] == 0
    # one transport made in each process, and each process posted through its own
    assert [line for line in journal if line.startswith("made")] == [f"made {parent['pid']}", f"made {child['pid']}"]
    assert f"post {child['pid']}" in journal and f"post {parent['pid']}" in journal
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == [
        "parent before fork",
        "parent after fork",
    ]
    events = stored(open_server, child["session"])["events"]
    assert [e["payload"]["content"] for e in events] == ["child 1", "child 2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.txt"]  # no spill file


FAILING_IN_CHILD = {
    # the same object again: its pool holds the parent's connections
    "same-transport": ("SHARED = make_transport()\n", "lambda: SHARED", "returned the transport it made in pid"),
    "raises": (
        "PARENT = os.getpid()\n"
        "def make_here():\n"
        "    if os.getpid() != PARENT:\n"
        "        raise OSError('no client certificate here')\n"
        "    return make_transport()\n",
        "make_here",
        "raised OSError: no client certificate here",
    ),
}


@pytest.mark.parametrize("case", FAILING_IN_CHILD, ids=list(FAILING_IN_CHILD))
def test_a_factory_that_fails_in_a_child_falls_back_to_a_default_transport(open_server, tmp_path, case):
    """Nothing may raise into the child's agent: it says why once and posts through a default
    transport, which here cannot reach the collector, so the child's events are spilled (kept)."""
    prelude, factory, why = FAILING_IN_CHILD[case]
    warned = "import logging\nWARNED = []\nlogging.getLogger('agentwatch.sdk').addHandler(logging.Handler())\n"
    warned += "logging.getLogger('agentwatch.sdk').handlers[-1].emit = lambda r: WARNED.append(r.getMessage())\n"
    agent = FORKING_AGENT.replace(
        'report("child", aop, finish(aop), pid=os.getpid())',
        ('report("child", aop, finish(aop), pid=os.getpid(), warned=[w for w in WARNED if "transport_factory" in w])'),
    )
    journal = tmp_path / "journal.txt"
    code = ROUTED_TRANSPORT.format(port=httpx.URL(open_server.url).port, journal=journal) + prelude + warned
    session = f"sess_factory_fails_{uuid.uuid4().hex}"
    code += agent.format(url=unreachable(), session=session, spill=tmp_path / "s.jsonl", factory=factory)
    got = run_forking_agent("sync", code)
    parent, child = got["parent"], got["child"]
    assert parent["status"] == 0 and parent["stats"]["sent"] == 2
    assert child["stats"]["sent"] == 0 and child["stats"]["spilled"] == 2  # kept for a later replay
    assert len(child["warned"]) == 1 and why in child["warned"][0] and "default transport" in child["warned"][0]
    assert f"post {child['pid']}" not in journal.read_text().split("\n")  # never on the parent's connections


def test_the_parent_posts_through_the_factorys_transport(open_server, tmp_path):
    """The factory serves the process that makes the client too: one option covers both."""
    session = f"sess_factory_parent_{uuid.uuid4().hex}"
    port = httpx.URL(open_server.url).port
    made = []

    class ToCollector(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(port=port)
            return super().handle_request(request)

    def factory() -> httpx.BaseTransport:
        made.append(ToCollector())
        return made[-1]

    aop = AopClient(
        "agent", url=unreachable(), session_id=session, spill_path=tmp_path / "s.jsonl", transport_factory=factory
    )
    aop.thought("through the factory")
    assert aop.flush(10)
    aop.close(5)
    assert len(made) == 1 and aop.stats["sent"] == 1 and aop.stats["spilled"] == 0
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == ["through the factory"]


def raises_no_cert() -> httpx.BaseTransport:
    raise OSError("no client certificate")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transport_factory": "httpx.HTTPTransport"}, "transport_factory: must be a callable"),
        ({"transport_factory": httpx.MockTransport(lambda r: httpx.Response(200))}, "transport_factory: must be a"),
        (
            {"transport_factory": httpx.HTTPTransport, "transport": httpx.HTTPTransport()},
            "transport_factory: give either transport or transport_factory, not both",
        ),
        ({"transport_factory": lambda: 42}, "transport_factory: returned int, not an httpx transport"),
        ({"transport_factory": lambda: None}, "transport_factory: returned NoneType"),
        ({"transport_factory": raises_no_cert}, "transport_factory: raised OSError: no client certificate"),
    ],
    ids=["text", "a-transport", "both", "not-a-transport", "none", "raises"],
)
def test_a_transport_factory_that_cannot_work_is_refused_by_name(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        Transport(unreachable(), spill_path=tmp_path / "s.jsonl", **options)
    if "transport" not in options:  # a client's own transport= is an agentwatch Transport
        with pytest.raises(ValueError, match=message):  # through a client too
            AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", **options)
    assert list(tmp_path.iterdir()) == []


def test_a_forked_child_without_a_factory_still_gets_a_default_transport(open_server, tmp_path):
    """No factory: the behaviour stays as it was, the child posting through a new default transport."""
    session = f"sess_no_factory_{uuid.uuid4().hex}"
    got = run_forking_agent(
        "sync",
        FORKING_AGENT.format(url=open_server.url, session=session, spill=tmp_path / "s.jsonl", factory="None"),
    )
    assert got["child"]["stats"]["sent"] == 2 and got["parent"]["stats"]["sent"] == 2
    assert [e["payload"]["content"] for e in stored(open_server, got["child"]["session"])["events"]] == [
        "child 1",
        "child 2",
    ]
