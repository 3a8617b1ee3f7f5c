"""Shared fixtures: settings and a migrated store per database backend, and a real server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agentwatch.config import Settings
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
from tests.support.server import RunningServer, open_settings, run_server
from tests.support.services import database_for

# Password hashes at the least cost argon2id settings allow, for every server the tests start
# (here and in child processes): thousands of users are made and logged in, and at the default
# cost (64 MiB, 3 passes) each took about 0.15 s of CPU. The code path is the same; a test that
# means the default cost gives its own ``auth.password_hash``.
for _name, _value in (("TIME_COST", "1"), ("MEMORY_KIB", "8192"), ("PARALLELISM", "1")):
    os.environ.setdefault(f"AGENTWATCH_AUTH__PASSWORD_HASH__{_name}", _value)

SHARED = Path(__file__).resolve().parents[2] / "shared"
OISP_EXAMPLES = SHARED / "data" / "oisp-spec" / "examples"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on SQLite and once on a fresh PostgreSQL database, at the
    schema's head; a test marked ``blank_database`` gets an empty one."""
    blank = request.node.get_closest_marker("blank_database") is not None
    yield from database_for(request.param, tmp_path, blank=blank)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like ``database_url``, for module-scoped servers (one server for many tests)."""
    yield from database_for(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A store at the schema's head on each backend (a test module may define its own)."""
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False})


@pytest.fixture
def server(settings: Settings) -> Iterator[RunningServer]:
    with run_server(settings) as srv:
        yield srv


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[RunningServer]:
    """One server for a module, on each store, with ``open_settings``."""
    with run_server(open_settings(tmp_path_factory.mktemp("server"), module_database_url)) as srv:
        yield srv


# The groups that take minutes of one worker (real server processes, kills, the OpenAPI fuzz):
# they start first (scripts/test keeps this order), so none is left running alone at the end.
LONG_GROUPS = (
    "api/test_openapi_fuzz.py",
    "processes/test_serve_processes.py",
    "discovery",
    "cli/test_crash_consistency.py",
    "store/test_migration_races.py",
    "cli/test_shutdown_under_load.py",
    "playbooks/test_run_liveness.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (scripts/test), keep each module on one worker so a
    module-scoped server starts once, and keep the discovery tests together: their mock agents
    listen on fixed ports of fixed 127.0.0.x addresses. A long module marked ``backend_groups``
    (every module-scoped fixture of it made per backend) is two groups, one per store, so its
    halves can run side by side. The ``LONG_GROUPS`` come first."""
    first: dict[int, int] = {}
    for item in items:
        path = Path(str(item.path)).relative_to(Path(__file__).parent)
        group = "discovery" if path.parts[0] == "discovery" else path.as_posix()
        first[id(item)] = LONG_GROUPS.index(group) if group in LONG_GROUPS else len(LONG_GROUPS)
        if item.get_closest_marker("backend_groups") is not None:
            params = getattr(item, "callspec", None)
            backend = params.params.get("module_database_url") if params is not None else None
            group = f"{group}[{backend}]" if backend else group
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: first[id(item)])  # stable: a module's tests stay together, in order
