"""Migration 0008 on a store holding dns_name values kept, unchecked, in the ports'
``extra``: valid and first-of-their-name values move into the served column, invalid
and duplicate ones stay where they were (shown, not served); downgrade puts them back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from ipam.db import migrate
from ipam.db.engine import Database
from ipam.dhcp.notifier import port_state
from ipam.store import Store

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
T0 = "2026-01-01T00:00:00.000000Z"


def _network(conn: sa.Connection, name: str, extra: str = "{}") -> str:
    net = str(uuid.uuid4())
    conn.execute(
        sa.text(
            "INSERT INTO networks (id, name, vdsm_name, mtu, admin_state_up, ha_count, "
            "project_id, description, extra, created_at, updated_at, revision_number) "
            "VALUES (:id, :n, :n, 1500, true, 1, '', '', :extra, :t, :t, 1)"
        ),
        {"id": net, "n": name, "extra": extra, "t": T0},
    )
    sub = str(uuid.uuid4())
    conn.execute(
        sa.text(
            "INSERT INTO subnets (id, network_id, name, ip_version, cidr, gateway_ip, "
            "enable_dhcp, dns_nameservers, host_routes, fresh_cursor, pool_size, project_id, "
            "description, extra, created_at, updated_at, revision_number) VALUES (:id, :net, "
            "'', 4, '10.0.0.0/24', '10.0.0.1', true, '[]', '[]', 50, 253, '', '', '{}', :t, :t, 1)"
        ),
        {"id": sub, "net": net, "t": T0},
    )
    return net


def _port(conn: sa.Connection, net: str, n: int, extra: str) -> str:
    port = str(uuid.uuid4())
    conn.execute(
        sa.text(
            "INSERT INTO ports (id, network_id, name, mac_address, device_id, device_owner, "
            "host_id, status, admin_state_up, project_id, description, extra, created_at, "
            "updated_at, revision_number) VALUES (:id, :net, '', :mac, '', '', '', 'DOWN', "
            "true, '', '', :extra, :t, :t, 1)"
        ),
        {
            "id": port,
            "net": net,
            "mac": f"fa:16:3e:00:00:{n:02x}",
            "extra": extra,
            "t": T0[:-3] + f"{n:02d}Z",
        },
    )
    sub = conn.execute(
        sa.text("SELECT id FROM subnets WHERE network_id = :net"), {"net": net}
    ).scalar()
    conn.execute(
        sa.text("INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES (:s, :ip, :p)"),
        {"s": sub, "ip": 167772160 + 10 + n, "p": port},
    )
    return port


@pytest.mark.parametrize("backend", BACKENDS)
def test_0008_moves_valid_unique_names_and_keeps_the_rest(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/m.sqlite"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    migrate.upgrade(db, "0007")
    with db.engine.begin() as conn:
        red = _network(conn, "red", '{"dns_domain": "Lab.Example."}')
        blue = _network(conn, "blue", '{"dns_domain": "no-final-dot"}')
        ports = {
            "first": _port(conn, red, 1, '{"dns_name": "Web", "tags": ["t"]}'),
            "duplicate": _port(conn, red, 2, '{"dns_name": "web"}'),
            "invalid": _port(conn, red, 3, '{"dns_name": "bad_name"}'),
            "digits": _port(conn, red, 4, '{"dns_name": "300"}'),
            "empty": _port(conn, red, 5, '{"dns_name": ""}'),
            "none": _port(conn, red, 6, "{}"),
            "elsewhere": _port(conn, blue, 7, '{"dns_name": "web"}'),
        }
    migrate.upgrade(db)
    migrate.check(db)
    with db.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text("SELECT id, dns_name, extra FROM ports"))}

    def column(key: str) -> str | None:
        return rows[ports[key]].dns_name

    assert (column("first"), column("elsewhere")) == ("web", "web")
    for key in ("duplicate", "invalid", "digits", "empty", "none"):
        assert column(key) is None, key
    store = Store(db)
    shown = {k: store.get_port(v) for k, v in ports.items()}
    assert {k: p["dns_name"] for k, p in shown.items()} == {
        "first": "web",
        "duplicate": "web",  # shown as it was, not served
        "invalid": "bad_name",
        "digits": "300",
        "empty": "",
        "none": "",
        "elsewhere": "web",
    }
    assert shown["first"]["tags"] == ["t"]  # the rest of extra is kept
    assert shown["first"]["dns_assignment"] == [
        {"hostname": "web", "ip_address": "10.0.0.11", "fqdn": "web.lab.example."}
    ]
    # blue's legacy domain fails the rule: shown, and the configured one is served.
    assert store.get_network(blue)["dns_domain"] == "no-final-dot"
    assert shown["elsewhere"]["dns_assignment"][0]["fqdn"] == "web.ovirtlocal."
    for key in ("duplicate", "invalid", "digits"):
        assert shown[key]["dns_assignment"] == [], key
        assert port_state(shown[key]).dns_name is None, key
    assert port_state(shown["first"]).dns_name == "web"
    # The kept port list (its triggers survived the migration) sees later changes.
    before = {p["id"]: p for p in store.list_ports()}
    assert before[ports["duplicate"]]["dns_name"] == "web"
    renamed = store.update_port(ports["duplicate"], {"dns_name": "web2"})
    assert renamed["dns_name"] == "web2" and renamed["dns_assignment"][0]["hostname"] == "web2"
    body = b"".join(store.port_list_body())
    assert b'"dns_name":"web2"' in body and b'"dns_name":"bad_name"' in body
    assert store.update_port(ports["invalid"], {"dns_name": ""})["dns_name"] == ""

    migrate.upgrade(db, "0008")  # idempotent at head
    if backend == "sqlite":
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            triggers = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ports'"
            ).all()
        assert len(triggers) == 3
    _downgrade(db)
    with db.engine.connect() as conn:
        extras = {
            r.id: r.extra
            for r in conn.execute(
                sa.select(sa.table("ports", sa.column("id"), sa.column("extra", sa.JSON)))
            )
        }
    assert extras[ports["first"]]["dns_name"] == "web"
    assert extras[ports["duplicate"]]["dns_name"] == "web2"
    assert "dns_name" not in extras[ports["invalid"]]
    db.dispose()


def _downgrade(db: Database) -> None:
    from alembic import command

    with db.engine.connect() as conn, conn.begin():
        command.downgrade(migrate._config(db, conn), "0007")
    assert migrate.current_revision(db) == "0007"
