"""Shared fixtures: stores on SQLite and on the real PostgreSQL, the API in-process,
and a real engine process for clients that need a socket (openstacksdk)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ipam.api.app import create_app
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.polling import wait_for
from ipam.store import Store

PG_ADMIN_URL = os.environ.get(
    "OVIRT_IPAM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"ovirt_ipam_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is needed (tools/test.sh starts it): {exc}")
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def make_store(url: str) -> Store:
    db = Database(url)
    migrate.upgrade(db)
    return Store(db)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = make_store(f"sqlite:///{tmp_path}/ipam.sqlite")
    yield store
    store.db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineProcess:
    """A real ``ovirt-ipam engine`` process; ended by its pid."""

    def __init__(
        self, tmp: Path, extra_conf: str = "", port: int | None = None, wait: bool = True
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = tmp / f"engine-{self.port}.conf"
        self.conf.write_text(
            f"[DEFAULT]\nstate_path = {tmp}/state\n[api]\nbind_port = {self.port}\n{extra_conf}"
        )
        self.log = open(tmp / f"engine-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipam.cli.main", "engine", "--config-file", str(self.conf)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            wait_for(self._up, 30, f"engine on port {self.port}", interval=0.1)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"engine exited with {self.proc.returncode}: {self.logs()}")
        try:
            return httpx.get(self.url + "/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    started: list[EngineProcess] = []

    def start(extra_conf: str = "", port: int | None = None, wait: bool = True) -> EngineProcess:
        eng = EngineProcess(tmp_path, extra_conf, port, wait)
        started.append(eng)
        return eng

    yield start
    for eng in started:
        eng.stop()


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
