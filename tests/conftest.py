"""Shared fixtures: stores on SQLite and on the real PostgreSQL, the API in-process,
and real engine processes (ipam.lab.harness) for clients that need a socket."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ipam.api.app import create_app
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.lab.harness import PG_ADMIN_URL, EngineProcess, temp_pg_database
from ipam.store import Store


def _fresh_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped when the generator is closed."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(temp_pg_database(PG_ADMIN_URL, prefix="ovirt_ipam_t"))
        except sa.exc.OperationalError as exc:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is needed (tools/test.sh starts it): {exc}")
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="module")
def pg_url_for_module() -> Iterator[str]:
    """A fresh PostgreSQL database for a module's tests, dropped after the module."""
    yield from _fresh_pg_database()


def statements_run(store: Store, action: Callable[[], object]) -> int:
    """How many SQL statements action runs through the store's engine."""
    count = 0

    def _count(*_args: object) -> None:
        nonlocal count
        count += 1

    sa.event.listen(store.db.engine, "before_cursor_execute", _count)
    try:
        action()
    finally:
        sa.event.remove(store.db.engine, "before_cursor_execute", _count)
    return count


def make_store(url: str) -> Store:
    db = Database(url)
    migrate.upgrade(db)
    return Store(db)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = make_store(f"sqlite:///{tmp_path}/ipam.sqlite")
    yield store
    store.db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on both backends: each test runs once on each."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/ipam.sqlite"
    else:
        url = request.getfixturevalue("pg_url")
    st = make_store(url)
    yield st
    st.db.dispose()


@pytest.fixture
def api(sqlite_store: Store) -> TestClient:
    """The REST API in-process on an SQLite store (no auth)."""
    return TestClient(create_app(sqlite_store))


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    """Starts engine processes in tmp_path (and, unless wait=False, waits for each to
    answer); stops them after the test."""
    started: list[EngineProcess] = []

    def start(extra_conf: str = "", port: int | None = None, wait: bool = True) -> EngineProcess:
        eng = EngineProcess(tmp_path, extra_conf, port).start()
        started.append(eng)
        if wait:
            eng.wait_up()
        return eng

    yield start
    for eng in started:
        eng.stop()


@pytest.fixture(scope="module")
def module_engine_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., EngineProcess]]:
    """engine_factory for a world shared by a module's tests: engines in ``tmp`` (a
    directory of their own unless given), stopped after the module."""
    started: list[EngineProcess] = []

    def start(
        extra_conf: str = "", port: int | None = None, wait: bool = True, tmp: Path | None = None
    ) -> EngineProcess:
        eng = EngineProcess(tmp or tmp_path_factory.mktemp("engine"), extra_conf, port).start()
        started.append(eng)
        if wait:
            eng.wait_up()
        return eng

    yield start
    for eng in started:
        eng.stop()


@pytest.fixture(scope="session", autouse=True)
def _started_early(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A test module whose world mostly waits (test_dhcp_continuity: its clients'
    renewals, past dhclient's T2) has a ``start_early(tmp_path_factory)``: called here,
    before the session's first test, for each such module with a test selected, so
    that the tests run before it overlap that wait. The module's own fixture takes the
    world and ends it; one it never took (the session stopped first) ends here."""
    modules = {id(m): m for item in request.session.items if (m := getattr(item, "module", None))}
    started = [
        m.start_early(tmp_path_factory) for m in modules.values() if hasattr(m, "start_early")
    ]
    yield
    for world in started:
        world.close()


# -- the reliability record (docs/reliability.md, made by tools/reliability_report.py) --

#: Tests (node id prefixes) whose passing cases are counted into the record, as a class.
COUNTED = {
    "REST API: malformed and invalid requests (Neutron 4xx body, store unchanged)": (
        "tests/test_api_bad_input.py::",
    ),
    "bus contracts: malformed JSON, wrong version or type, oversized, unbounded lists": (
        "tests/test_contracts.py::test_malformed_messages",
        "tests/test_contracts.py::test_oversized",
        "tests/test_contracts.py::test_list_sizes",
        "tests/test_contracts.py::test_make_refuses",
    ),
    "Host.setDHCP through the host service: invalid calls (JSON-RPC error, mapping "
    "unchanged, agent untouched)": (
        "tests/test_host_verb.py::test_invalid_input",
        "tests/test_host_verb.py::test_unknown_verb",
    ),
    "access: unsafe or broken configurations refused at start (noauth off loopback, "
    "token without auth_token, half or unreadable TLS files, TLS files without amqps://)": (
        "tests/test_access.py::test_unsafe_or_broken",
    ),
}
_passed: dict[str, int] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    from tests import faultlab

    faultlab.RESULTS.unlink(missing_ok=True)  # the record is of this run only


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        for name, prefixes in COUNTED.items():
            if report.nodeid.startswith(prefixes):
                _passed[name] = _passed.get(name, 0) + 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests import faultlab

    for name, count in _passed.items():
        kind, _, title = (
            name.partition(": ") if name.startswith("access: ") else ("input", "", name)
        )
        faultlab.record(kind, title, cases=count, refused=count)


from tests.agentlab import world_factory  # noqa: E402,F401 (the one-host DHCP world fixture)
