"""Schema migrations as a scale-out deployment meets them, on both stores: several processes
starting on one fresh database at once, restarts of nodes while others run, a database left by
a newer agentwatch or owned by another program, a migration that fails half way, and every
revision stepped down and up again with data in the tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import event, insert, inspect, select, text

from agentwatch.store import counters
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import SchemaError, alembic_config, migrate, migration_connection
from agentwatch.store.schema import kv
from tests.support.server import free_port

# Every test here starts from an empty database: the migrations are what is tested.
pytestmark = pytest.mark.blank_database

BIN = Path(sys.executable).parent / "agentwatch"
RACERS = 4

# Each racer builds its engine, says "ready", and migrates when a line arrives on stdin: the
# test releases them together once every one is ready, so their migrations overlap.
MIGRATE_WHEN_RELEASED = """
import sys
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
engine = make_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
migrate(engine)
"""


CONNECT_WHEN_RELEASED = """
import sys
from agentwatch.store.engine import make_engine
engine = make_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
with engine.connect():
    pass
"""


def release_together(script: str, url: str, n: int) -> list[str]:
    """Start ``n`` processes running ``script``, let them go at one moment; their failures."""
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    failed = []
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        for racer in racers:
            _out, err = racer.communicate(timeout=120)
            if racer.returncode != 0:
                failed.append(err[-1500:])
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    return failed


def test_processes_opening_one_new_sqlite_file_at_the_same_moment_all_connect(tmp_path):
    """The first connection switches a new file to WAL; SQLite refuses the switch at once when
    another process is making it, whatever the busy timeout."""
    for attempt in range(6):
        url = f"sqlite:///{tmp_path / f'new-{attempt}.db'}"
        assert release_together(CONNECT_WHEN_RELEASED, url, 8) == []


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def heads(engine) -> set[str]:  # noqa: ANN001
    return set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


def versions(engine) -> set[str]:  # noqa: ANN001
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


def tables(engine) -> set[str]:  # noqa: ANN001
    return set(inspect(engine).get_table_names())


def test_processes_migrating_one_fresh_database_at_the_same_moment_all_start(database_url, engine):
    assert release_together(MIGRATE_WHEN_RELEASED, database_url, RACERS) == []
    assert versions(engine) == heads(engine)


def test_a_restart_on_a_database_at_head_only_reads(engine):
    """No DDL, no write and no lock: a node restarting while others run must not queue a table
    lock (PostgreSQL) or the write lock (SQLite) in front of their statements."""
    migrate(engine)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_rest: seen.append(sql))
    migrate(engine)
    assert seen
    for sql in seen:
        assert sql.lstrip().upper().startswith(("SELECT", "PRAGMA")), sql
        assert "advisory" not in sql.lower(), sql


def test_a_second_migration_waits_a_bounded_time_for_the_lock_and_says_why(engine):
    """A migration stuck elsewhere does not hang start-up: past the wait the error names the lock."""
    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with migration_connection(other):
            started = time.monotonic()
            with pytest.raises(SchemaError, match="could not take the schema migration lock within 0.5 s"):
                migrate(engine, lock_wait_s=0.5)
            assert time.monotonic() - started < 10
        migrate(engine)  # the lock, let go, is taken at once
    finally:
        other.dispose()
    assert versions(engine) == heads(engine)


def _from_the_future(engine) -> None:  # noqa: ANN001
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE alembic_version SET version_num = '0900_from_the_future' WHERE version_num = '0400_detect'")
        )


def test_a_database_from_a_newer_agentwatch_is_named_as_such(engine):
    _from_the_future(engine)
    before = tables(engine)
    with pytest.raises(SchemaError) as caught:
        migrate(engine)
    message = str(caught.value)
    assert "'0900_from_the_future'" in message and "newer than this program" in message
    assert tables(engine) == before
    assert "0900_from_the_future" in versions(engine)


@pytest.mark.parametrize("args", [["users", "list"], ["serve", "--no-auth", "--port"]])
def test_the_command_line_on_a_newer_database_exits_2_with_the_reason(engine, database_url, tmp_path, args):
    args = [*args, str(free_port())] if args[-1] == "--port" else args
    _from_the_future(engine)
    env = {**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path), "AGENTWATCH_DATABASE_URL": database_url}
    proc = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)
    said = " ".join(proc.stderr.replace("│", " ").split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "'0900_from_the_future'" in said and "newer than this program" in said


@pytest.mark.parametrize("table", ["kv", "rule_fires"])
def test_a_database_with_tables_named_like_ours_but_no_alembic_version_is_refused_untouched(engine, table):
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, note TEXT)"))
    for _attempt in range(2):  # and refused the same way again: nothing was left half done
        with pytest.raises(
            SchemaError, match=rf"is not agentwatch's: it has tables named like agentwatch's \({table}\)"
        ):
            migrate(engine)
        assert tables(engine) == {table}


def test_a_database_holding_only_other_tables_is_migrated(engine):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    migrate(engine)
    assert versions(engine) == heads(engine)
    assert "someone_elses" in tables(engine)


def test_a_migration_that_fails_half_way_leaves_the_store_as_it_was(engine):
    """Revision 0003 succeeds before 0400 fails on a stray table: all of it is undone, so the
    next start, once the stray table is gone, migrates (SQLite ran each CREATE on its own)."""
    command.upgrade(alembic_config(engine), "0002_alerts")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rule_fires (stray INTEGER)"))
    before = tables(engine)
    with pytest.raises(Exception, match="rule_fires"):
        migrate(engine)
    assert versions(engine) == {"0002_alerts"}
    assert tables(engine) == before
    assert "ix_counters_top" not in {ix["name"] for ix in inspect(engine).get_indexes("counters")}
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE rule_fires"))
    migrate(engine)
    assert versions(engine) == heads(engine)


def _downgrades(engine) -> list[str]:  # noqa: ANN001
    """Targets that undo one revision at a time from every head down to nothing."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    branch_heads = [f"{head}@-1" for head in sorted(script.get_heads())]
    return [*branch_heads, "0001_foundation", "base"]


def test_every_revision_steps_down_and_up_again_with_data_in_the_tables(engine):
    migrate(engine)
    totals = Counter({("ai_model", f"model-{i:03d}"): float(i + 1) for i in range(counters.TOP_N + 30)})
    with engine.begin() as conn:
        counters.add(conn, totals)
        conn.execute(insert(kv), [{"key": "kept", "value": "across the steps"}])
    for target in _downgrades(engine):
        command.downgrade(alembic_config(engine), target)
        migrate(engine)
        assert versions(engine) == heads(engine), target
        if target == "base":
            break
        family = counters.read(engine, ["ai_model"]).family("ai_model")
        assert sum(family.top.values()) + family.rest == sum(totals.values()), target
        with engine.connect() as conn:
            assert conn.execute(select(kv.c.value).where(kv.c.key == "kept")).scalar() == "across the steps"
    with engine.connect() as conn:  # stepped down to nothing and up again: empty, as new
        assert conn.execute(select(kv.c.key)).first() is None
