"""The schema comes from the alembic migrations, and the engine checks it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ipam.db import migrate
from ipam.db.engine import Database
from ipam.db.schema import metadata
from ipam.store import Store

NET_ID = "6f1c2a9e-8d3b-4f5a-9c7e-0b1d2e3f4a5b"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_build_exactly_the_schema_the_code_uses(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/m.sqlite"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    with pytest.raises(migrate.SchemaNotCurrent, match="db upgrade"):
        migrate.check(db)
    migrate.upgrade(db)
    migrate.check(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    migrate.upgrade(db)  # idempotent
    db.dispose()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ipam.cli.main", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.postgresql
def test_db_commands_and_engine_refuse_an_unmigrated_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    conf = tmp_path / "pg.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}\n[database]\nconnection = {pg_url}\n"
        "[api]\nbind_port = 1\n"
    )
    check = _cli("db", "check", "--config-file", str(conf))
    assert check.returncode == 2 and "ovirt-ipam db upgrade" in check.stderr
    engine = _cli("engine", "--config-file", str(conf))
    assert engine.returncode == 2 and "ovirt-ipam db upgrade" in engine.stderr
    up = _cli("db", "upgrade", "--config-file", str(conf))
    assert up.returncode == 0, up.stderr
    assert "upgraded from empty to" in up.stderr
    check = _cli("db", "check", "--config-file", str(conf))
    assert check.returncode == 0 and migrate.head_revision() in check.stdout


def _with_a_network(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, revision: str
) -> tuple[Database, Store]:
    """A store migrated to ``revision`` holding one network (NET_ID, bridge 'old',
    HA count 2, revision 5), written as that revision's schema has it."""
    url = (
        f"sqlite:///{tmp_path}/m.sqlite"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    migrate.upgrade(db, revision)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO networks (id, name, vdsm_name, mtu, admin_state_up, ha_count, "
                "project_id, description, extra, created_at, updated_at, revision_number) "
                "VALUES (:id, 'old', 'old', 1500, true, 2, '', '', '{}', :t, :t, 5)"
            ),
            {"id": NET_ID, "t": "2026-01-01T00:00:00.000000Z"},
        )
    return db, Store(db)


@pytest.mark.parametrize("backend", BACKENDS)
def test_0003_keeps_networks_with_the_agents_lease_time(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store at 0002 holding a network: after the upgrade the network is intact and
    its dhcp_lease_time is null (the DHCP agent's default), then settable."""
    db, store = _with_a_network(backend, tmp_path, request, "0002")
    migrate.upgrade(db)
    migrate.check(db)
    net = store.get_network(NET_ID)
    assert (net["vdsm_name"], net["ha_count"], net["revision_number"]) == ("old", 2, 5)
    assert net["dhcp_lease_time"] is None
    assert store.update_network(NET_ID, {"dhcp_lease_time": -1})["dhcp_lease_time"] == -1
    db.dispose()


def _subnet_and_port_at_0004(db: Database) -> tuple[str, str]:
    """A subnet 10.0.0.0/24 and a port holding 10.0.0.2 on NET_ID, written in SQL as
    the schema of 0004 has them (the store's code writes today's schema)."""
    sub, port, t = str(uuid.uuid4()), str(uuid.uuid4()), "2026-01-01T00:00:00.000000Z"
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO subnets (id, network_id, name, cidr, gateway_ip, enable_dhcp, "
                "dns_nameservers, host_routes, fresh_cursor, pool_size, project_id, "
                "description, extra, created_at, updated_at, revision_number) VALUES (:id, "
                ":net, '', '10.0.0.0/24', '10.0.0.1', true, '[]', '[]', 1, 253, '', '', '{}', "
                ":t, :t, 1)"
            ),
            {"id": sub, "net": NET_ID, "t": t},
        )
        conn.execute(
            sa.text(
                "INSERT INTO allocation_pools (subnet_id, first_ip, last_ip) "
                "VALUES (:id, :a, :b)"
            ),
            {"id": sub, "a": 167772162, "b": 167772414},
        )
        conn.execute(
            sa.text(
                "INSERT INTO ports (id, network_id, name, mac_address, device_id, device_owner, "
                "host_id, status, admin_state_up, project_id, description, extra, created_at, "
                "updated_at, revision_number) VALUES (:id, :net, '', 'fa:16:3e:00:00:01', 'vm', "
                "'', '', 'DOWN', true, '', '', '{}', :t, :t, 1)"
            ),
            {"id": port, "net": NET_ID, "t": t},
        )
        conn.execute(
            sa.text("INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES (:s, :ip, :p)"),
            {"s": sub, "ip": 167772162, "p": port},
        )
    return sub, port


@pytest.mark.parametrize("backend", BACKENDS)
def test_0005_keeps_networks_subnets_and_ports_and_allows_no_bridge(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store at 0004 with a network, a subnet and a port: 0005 copies the networks
    table on SQLite (foreign keys are off meanwhile, or the subnets and ports would
    cascade away); afterwards a network may have no bridge and a 256-character name,
    and the bridges stay unique."""
    db, store = _with_a_network(backend, tmp_path, request, "0004")
    sub, port = _subnet_and_port_at_0004(db)
    migrate.upgrade(db)
    migrate.check(db)
    assert [s["id"] for s in store.list_subnets()] == [sub]
    assert store.get_port(port)["fixed_ips"] == [{"subnet_id": sub, "ip_address": "10.0.0.2"}]
    net = store.get_network(NET_ID)
    assert (net["vdsm_name"], net["revision_number"], net["subnets"]) == ("old", 5, [sub])
    if backend == "sqlite":
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    bare = [store.create_network({"name": "VM Network " + "x" * 245}) for _ in range(2)]
    assert [n["vdsm_name"] for n in bare] == [None, None]
    assert len(bare[0]["name"]) == 256
    with pytest.raises(Exception, match="already used"):
        store.create_network({"name": "n", "vdsm_name": "old"})
    db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_0010_keeps_leases_and_adds_what_the_client_said(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A lease recorded at 0009 is kept by 0010, with no client id or name yet; then
    both are recorded (and downgrading drops only them)."""
    db, store = _with_a_network(backend, tmp_path, request, "0009")
    mac = "02:00:00:00:10:01"
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO dhcp_leases (network_id, mac_address, host, ip_address, state, "
                "first_seen, last_seen, expires_at, reason) "
                "VALUES (:net, :mac, 'h1', '10.0.0.5', 'bound', 1.5, 2.5, NULL, NULL)"
            ),
            {"net": NET_ID, "mac": mac},
        )
    migrate.upgrade(db)
    migrate.check(db)
    (row,) = store.list_leases(NET_ID)
    assert (row["ip_address"], row["state"], row["host"]) == ("10.0.0.5", "bound", "h1")
    assert (row["client_id"], row["client_hostname"]) == (None, None)
    fact = {"mac_address": mac, "ip_address": "10.0.0.5", "state": "bound", "seen_at": 3.0}
    store.record_leases("h1", NET_ID, [fact | {"client_hostname": "vm"}], False)
    assert store.list_leases(NET_ID)[0]["client_hostname"] == "vm"
    with db.engine.connect() as conn, conn.begin():
        command.downgrade(migrate._config(db, conn), "0009")
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT state FROM dhcp_leases")).scalars().all() == ["bound"]
        assert "client_id" not in {c["name"] for c in sa.inspect(conn).get_columns("dhcp_leases")}
    db.dispose()
