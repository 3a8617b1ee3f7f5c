"""A server that stopped, or that could not be built, leaves no store connection open behind it.

Components hand store work to threads (``asyncio.to_thread``) and stop by cancelling the task
that waits for it; the thread goes on. When the server disposed of its engine while such a
thread still held a connection, the thread then returned it to a pool nobody would close: the
connection stayed open (a PostgreSQL session held) until the garbage collector found it, and
psycopg warned that it was deleted while still open. The component here does what the SLA
watch and the approval expiry do at start: a pass on a thread, cancelled by ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from agentwatch.api.factory import create_app
from agentwatch.app import Agentwatch
from agentwatch.extensions import load_registry
from tests.support.server import free_port, open_settings, serve_asgi
from tests.support.services import PG_ADMIN, database_for


class StoreWorkOnAThread:
    """A lifecycle part (registered as an external package would) whose start hands a pass
    over the store to a thread, and whose stop cancels the task waiting for it."""

    def __init__(self, aw: Agentwatch) -> None:
        self.aw = aw
        self.holding = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.task: asyncio.Task[Any] | None = None

    def work(self) -> None:
        with self.aw.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            self.holding.set()
            self.release.wait(30)
        self.finished.set()

    async def start(self) -> None:
        self.task = asyncio.create_task(asyncio.to_thread(self.work))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def sessions_on(database: str) -> int:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL only: its sessions show whether a connection was left open."""
    yield from database_for("postgresql", tmp_path)


@pytest.mark.postgres
def test_a_thread_still_at_work_when_the_server_stops_gives_its_connection_back_to_be_closed(tmp_path, postgres_url):
    parts: list[StoreWorkOnAThread] = []

    def part_of(aw: Agentwatch) -> StoreWorkOnAThread:
        parts.append(StoreWorkOnAThread(aw))
        return parts[-1]

    registry = load_registry()
    registry.lifecycle.register("store_work_on_a_thread", part_of)
    port = free_port()
    settings = open_settings(tmp_path, postgres_url).model_copy(update={"port": port})
    aw = Agentwatch(settings, registry=registry)
    (part,) = parts
    with serve_asgi(create_app(aw), settings.host, port, lifespan="on") as server:
        assert part.holding.wait(30)
        server.should_exit = True  # the server stops while the pass still holds its connection
        threading.Timer(0.5, part.release.set).start()
    assert part.finished.is_set()
    assert sessions_on(postgres_url.rsplit("/", 1)[1]) == 0  # every connection of the stopped server is closed


def refusing_part(_aw: Agentwatch) -> None:
    raise ValueError("refusing_part: its settings are refused")


@pytest.mark.postgres
def test_a_server_that_cannot_be_built_closes_the_connections_it_opened(tmp_path, postgres_url):
    """The store is opened and migrated before the parts are built; a part refusing its
    settings used to leave that engine's connection open for the garbage collector."""
    registry = load_registry()
    registry.lifecycle.register("refusing_part", refusing_part)
    with pytest.raises(ValueError, match="refusing_part"):
        Agentwatch(open_settings(tmp_path, postgres_url), registry=registry)
    assert sessions_on(postgres_url.rsplit("/", 1)[1]) == 0
