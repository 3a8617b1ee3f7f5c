"""The table by which the processes of one server even out their connections
(``processes.balance``). Two ``Balancer`` objects on one directory stand for two processes
(each locks the table through a descriptor of its own, as processes do); a real connection
travels from one to the other over the handover socket."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from agentwatch.processes.balance import ROW, Balancer, create_table, socket_path


@pytest.fixture
def balancers():
    made: list[Balancer] = []

    def make(directory: str, index: int, count: int) -> Balancer:
        made.append(Balancer(directory, index, count))
        return made[-1]

    yield make
    for b in made:
        b.close()


def table(tmp_path: Path, processes: int = 2) -> str:
    create_table(str(tmp_path), processes)
    return str(tmp_path)


def test_a_process_keeps_connections_until_it_would_hold_two_more_than_another(tmp_path: Path, balancers):
    d = table(tmp_path, 3)
    a, b, c = balancers(d, 0, 3), balancers(d, 1, 3), balancers(d, 2, 3)
    assert a.choose(0) is None  # 1 against 0: kept
    assert a.loads() == [1, 0, 0]
    assert a.choose(1) == 1  # 2 against 0: to the first of the least loaded
    assert a.loads() == [1, 1, 0]  # counted for process 1 before it takes it up
    assert a.choose(1) == 2
    assert a.choose(1) is None  # 2 against 1: kept
    assert b.choose(0) is None and c.choose(0) is None
    assert a.loads() == [2, 2, 2]
    assert b.choose(1) is None  # 3 against 2
    assert b.choose(2) == 0  # 4 against 2: to the first least loaded, a
    assert c.loads() == [3, 3, 2]


def test_taking_up_and_losing_connections_moves_the_counts(tmp_path: Path, balancers):
    d = table(tmp_path)
    a, b = balancers(d, 0, 2), balancers(d, 1, 2)
    a.choose(0)
    assert a.choose(1) == 1
    assert b.loads() == [1, 1]
    b.took_up(1)  # it holds one now, none on the way
    assert ROW.unpack_from(b._map, ROW.size) == (1, 0)
    b.note(0)  # and it was closed
    a.note(0)
    assert a.loads() == [0, 0]


def test_a_process_started_again_starts_from_zero(tmp_path: Path, balancers):
    d = table(tmp_path)
    a = balancers(d, 0, 2)
    a.choose(0)
    a.choose(1)
    assert a.loads() == [1, 1]
    balancers(d, 0, 2)  # the process at index 0 replaced: its connections died with it
    assert a.loads() == [0, 1]


def test_a_table_of_another_size_is_refused(tmp_path: Path, balancers):
    d = table(tmp_path, 2)
    with pytest.raises(ValueError, match="not 3 rows"):
        balancers(d, 0, 3)


def test_the_table_is_made_once_and_private(tmp_path: Path, balancers):
    d = table(tmp_path)
    assert (os.stat(os.path.join(d, "table")).st_mode & 0o777) == 0o600
    with pytest.raises(FileExistsError):
        create_table(d, 2)


def test_a_connection_handed_over_is_the_same_connection(tmp_path: Path, balancers):
    d = table(tmp_path)
    sender, receiver = balancers(d, 0, 2), balancers(d, 1, 2)

    async def scenario() -> bytes:
        taken: asyncio.Queue[socket.socket] = asyncio.Queue()
        receiver.listen(taken.put_nowait, held=lambda: 0)
        try:
            client, served = socket.socketpair()
            with client:
                sender.choose(0)
                assert sender.choose(1) == 1
                assert sender.hand_over(1, served.fileno())
                served.close()  # the sender lets go, as the server's transport does
                conn = await asyncio.wait_for(taken.get(), 5)
                with conn:
                    client.sendall(b"ping")
                    conn.setblocking(True)
                    got = conn.recv(4)
                    conn.sendall(b"pong")
                    assert client.recv(4) == b"pong"
                    return got
        finally:
            receiver.stop_listening()

    assert asyncio.run(scenario()) == b"ping"
    assert sender.loads() == [1, 1]  # on its way to 1 until 1 reports it taken up
    assert not os.path.exists(socket_path(d, 1))  # closed: no more connections are sent to it


def test_a_process_that_does_not_listen_gets_nothing(tmp_path: Path, balancers):
    d = table(tmp_path)
    sender = balancers(d, 0, 2)
    sender.choose(0)
    assert sender.choose(1) == 1
    a, b = socket.socketpair()
    with a, b:
        assert not sender.hand_over(1, b.fileno())  # no process listens at index 1
    assert sender.loads() == [1, 0]  # the count given to 1 is taken back
    sender.note(2)  # the sender kept it: it holds two
    assert sender.loads() == [2, 0]


def test_a_descriptor_that_is_no_socket_is_closed_not_served(tmp_path: Path, balancers):
    d = table(tmp_path)
    sender, receiver = balancers(d, 0, 2), balancers(d, 1, 2)

    async def scenario() -> list[socket.socket]:
        taken: list[socket.socket] = []
        receiver.listen(taken.append, held=lambda: 0)
        try:
            sender.choose(0)
            assert sender.choose(1) == 1
            read_end, write_end = os.pipe()
            try:
                assert sender.hand_over(1, read_end)
            finally:
                os.close(read_end)
            await asyncio.sleep(0.2)
            # the receiver closed its copy: the pipe has no reader left
            with pytest.raises(BrokenPipeError):
                os.write(write_end, b"x")
            os.close(write_end)
            return taken
        finally:
            receiver.stop_listening()

    assert asyncio.run(scenario()) == []
    assert sender.loads() == [1, 0]  # what was counted for it is taken back
