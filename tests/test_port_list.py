"""The kept unfiltered port list (ipam.store.port_list): after every committed change,
made through this store, through another store or engine on the same database, or
by plain SQL, the next list shows it, and its JSON is byte for byte what the
generic list path renders."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from ipam.api import encoded
from ipam.api.app import create_app
from ipam.api.encoded import EncodedPieces
from ipam.db.engine import Database
from ipam.db.schema import change_counters, ip_allocations, port_changes, ports
from ipam.lab.harness import database_conf, engines_sharing
from ipam.lab.load import create_network_and_subnet
from ipam.store import Store, port_list
from tests.conftest import make_store


def kept(store: Store) -> bytes:
    return b"".join(store.port_list_body())


def generic(store: Store) -> bytes:
    """The list as the generic path renders it (what the API sent before)."""
    return bytes(JSONResponse({"ports": store.list_ports({})}).body)


def check(store: Store) -> list[dict[str, Any]]:
    body = kept(store)
    assert body == generic(store)
    return json.loads(body)["ports"]


def ids(store: Store) -> list[str]:
    return [p["id"] for p in check(store)]


@pytest.fixture
def net(store: Store) -> dict[str, Any]:
    net = store.create_network({"name": "n1", "vdsm_name": "n1"})
    sub = store.create_subnet({"network_id": net["id"], "cidr": "10.1.0.0/24"})
    return {"id": net["id"], "subnet": sub["id"]}


@pytest.fixture
def other(store: Store) -> Iterator[Store]:
    """A second store on the same database: another engine, as far as the list knows."""
    second = Store(Database(store.db.url))
    yield second
    second.db.dispose()


def test_empty_and_every_change_through_the_store(store: Store, net: dict[str, Any]) -> None:
    assert kept(store) == b'{"ports":[]}' == generic(store)
    a = store.create_port({"network_id": net["id"], "name": "a", "device_id": "vm-a"})
    assert ids(store) == [a["id"]]
    b = store.create_port(
        {"network_id": net["id"], "name": "b", "device_owner": "oVirt", "tags": ["t"]}
    )
    assert ids(store) == [a["id"], b["id"]]
    store.update_port(a["id"], {"name": "a2", "binding:host_id": "host1"})
    assert check(store)[0]["name"] == "a2"
    store.update_port(a["id"], {"fixed_ips": [{"ip_address": "10.1.0.100"}]})
    assert check(store)[0]["fixed_ips"][0]["ip_address"] == "10.1.0.100"
    store.update_port(a["id"], {"mac_address": "56:6f:00:00:00:01"})
    assert check(store)[0]["mac_address"] == "56:6f:00:00:00:01"
    store.set_port_status(b["id"], b["revision_number"], "ACTIVE")  # no new revision
    assert check(store)[1]["status"] == "ACTIVE"
    store.delete_port(a["id"])
    assert ids(store) == [b["id"]]
    dhcp = store.ensure_dhcp_port(net["id"], "host1")
    assert dhcp is not None and ids(store) == [b["id"], dhcp["id"]]
    store.delete_port(b["id"])
    store.delete_subnet(net["subnet"])  # the DHCP port's address goes by cascade
    assert check(store)[0]["fixed_ips"] == []
    store.delete_network(net["id"])
    assert ids(store) == []


def test_changes_through_another_store_show_at_once(
    store: Store, other: Store, net: dict[str, Any]
) -> None:
    mine = store.create_port({"network_id": net["id"], "name": "mine"})
    assert ids(store) == [mine["id"]]
    theirs = other.create_port({"network_id": net["id"], "name": "theirs"})
    assert ids(store) == [mine["id"], theirs["id"]]
    other.update_port(mine["id"], {"name": "renamed"})
    assert check(store)[0]["name"] == "renamed"
    other.delete_port(mine["id"])
    assert ids(store) == [theirs["id"]]
    assert ids(other) == [theirs["id"]]
    store.delete_port(theirs["id"])
    assert ids(other) == [] == ids(store)


def test_changes_in_plain_sql_show_at_once(store: Store, net: dict[str, Any]) -> None:
    """The counter is kept by the database's triggers, whoever writes."""
    a = store.create_port({"network_id": net["id"], "name": "a"})
    b = store.create_port({"network_id": net["id"], "name": "b"})
    check(store)
    with store.db.engine.begin() as conn:
        conn.execute(sa.update(ports).where(ports.c.id == a["id"]).values(status="ACTIVE"))
    assert check(store)[0]["status"] == "ACTIVE"
    with store.db.engine.begin() as conn:
        conn.execute(sa.delete(ip_allocations).where(ip_allocations.c.port_id == b["id"]))
    assert check(store)[1]["fixed_ips"] == []
    # A port of another engine whose clock is behind: it sorts first.
    with store.db.engine.begin() as conn:
        row = conn.execute(sa.select(ports).where(ports.c.id == a["id"])).one()._asdict()
        row.update(id="00000000-0000-4000-8000-000000000000", mac_address="56:6f:00:00:00:09")
        row.update(created_at="2000-01-01T00:00:00.000000Z")
        conn.execute(sa.insert(ports), row)
    assert ids(store) == [row["id"], a["id"], b["id"]]
    with store.db.engine.begin() as conn:
        conn.execute(sa.delete(ports).where(ports.c.id.in_([row["id"], a["id"]])))
    assert ids(store) == [b["id"]]


def test_many_ports_in_blocks_created_updated_deleted(
    store: Store, other: Store, net: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of 4 ports: they split as ports come and go when they empty."""
    monkeypatch.setattr(port_list, "BLOCK", 4)
    made = [store.create_port({"network_id": net["id"], "name": f"p{i}"}) for i in range(5)]
    check(store)
    made += [other.create_port({"network_id": net["id"], "name": f"q{i}"}) for i in range(30)]
    assert len(check(store)) == 35  # one refresh, 30 changes: read by id
    assert len(store.port_list._blocks) > 3
    live = [p["id"] for p in made]
    for i, port in enumerate(made):
        if i % 3 == 0:
            other.delete_port(port["id"])
            live.remove(port["id"])
        elif i % 3 == 1:
            other.update_port(port["id"], {"name": f"u{i}"})
        if i % 5 == 0:
            check(store)
    check(store)
    for port_id in live[:12]:  # whole blocks empty
        store.delete_port(port_id)
    assert len(check(store)) == len(live) - 12
    with store.db.engine.begin() as conn:
        conn.execute(sa.delete(ports))
    assert ids(store) == []
    store.create_port({"network_id": net["id"], "name": "again"})
    assert len(check(store)) == 1


def test_a_list_behind_the_pruned_changes_reads_every_port(
    store: Store, net: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    behind = port_list.PortList(store.db, keep=3)
    ahead = port_list.PortList(store.db, keep=3)
    first = store.create_port({"network_id": net["id"], "name": "first"})
    assert json.loads(b"".join(behind.body()))["ports"][0]["id"] == first["id"]
    for i in range(10):
        store.create_port({"network_id": net["id"], "name": f"p{i}"})
        assert b"".join(ahead.body()) == generic(store)
    with store.db.read() as conn:
        pruned = conn.execute(sa.select(change_counters.c.pruned)).scalar()
        logged = conn.execute(sa.select(sa.func.min(port_changes.c.n))).scalar()
    assert pruned > 0 and logged > pruned  # the older changes are gone
    full_reads = []
    monkeypatch.setattr(behind, "_read_all", lambda conn: full_reads.append(conn) or read(conn))
    read = port_list.PortList._read_all.__get__(behind)
    store.delete_port(first["id"])  # its change is logged, the earlier ones are not
    assert b"".join(behind.body()) == generic(store)
    assert len(full_reads) == 1
    assert b"".join(ahead.body()) == generic(store)


def test_every_list_has_every_change_committed_before_it(
    store: Store, other: Store, net: dict[str, Any]
) -> None:
    """A writer creates and deletes ports through another store while lists run: each
    list has every port whose create returned before the list began, and none whose
    delete had."""
    log: list[tuple[float, str, str]] = []  # (when, create|deleting|delete, port id)
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            live: list[str] = []
            for i in range(60):
                port = other.create_port({"network_id": net["id"], "name": f"w{i}"})
                log.append((time.monotonic(), "create", port["id"]))
                live.append(port["id"])
                if i % 3 == 2:
                    gone = live.pop(0)
                    log.append((time.monotonic(), "deleting", gone))
                    other.delete_port(gone)
                    log.append((time.monotonic(), "delete", gone))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    lists = 0
    while not done.is_set() or lists < 3:
        began = time.monotonic()
        seen = {p["id"] for p in json.loads(kept(store))["ports"]}
        lists += 1
        so_far = list(log)  # a port deleted while the list ran may be in it or not
        created = {port_id for when, what, port_id in so_far if what == "create" and when < began}
        deleting = {port_id for _, what, port_id in so_far if what == "deleting"}
        assert created - deleting <= seen
        gone = {port_id for when, what, port_id in so_far if what == "delete" and when < began}
        assert not gone & seen
    thread.join()
    assert not errors
    check(store)


def test_api_answers_the_kept_list_and_filters_still_work(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path}/api.sqlite")
    try:
        api = TestClient(create_app(store))
        net = api.post("/v2.0/networks", json={"network": {"name": "n", "vdsm_name": "n"}})
        net_id = net.json()["network"]["id"]
        api.post("/v2.0/subnets", json={"subnet": {"network_id": net_id, "cidr": "10.9.0.0/24"}})
        for i in range(3):
            body = {"network_id": net_id, "device_id": f"vm-{i}", "device_owner": "oVirt"}
            assert api.post("/v2.0/ports", json={"port": body}).status_code == 201
        r = api.get("/v2.0/ports")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
        assert r.content == generic(store)
        assert [p["device_id"] for p in r.json()["ports"]] == ["vm-0", "vm-1", "vm-2"]
        one = api.get("/v2.0/ports", params={"device_id": "vm-1"}).json()["ports"]
        assert [p["device_id"] for p in one] == ["vm-1"]
        fields = api.get("/v2.0/ports", params={"fields": "id"}).json()["ports"]
        assert all(list(p) == ["id"] for p in fields) and len(fields) == 3
        api.delete(f"/v2.0/ports/{one[0]['id']}")
        assert [p["device_id"] for p in api.get("/v2.0/ports").json()["ports"]] == [
            "vm-0",
            "vm-2",
        ]
    finally:
        store.db.dispose()


@pytest.mark.postgresql
@pytest.mark.timeout(120)
def test_two_engines_on_one_postgresql_list_each_others_changes(
    pg_url: str, tmp_path: Path
) -> None:
    """Real engine processes: a change committed through one engine is in the other's
    very next full list (each keeps its own list)."""
    with engines_sharing(tmp_path, database_conf(pg_url), 2) as engines:
        a, b = (httpx.Client(base_url=e.url, timeout=30) for e in engines)
        net_id, _ = create_network_and_subnet(engines[0].url, "n", "10.7.0.0/24")

        def listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
            r = client.get("/v2.0/ports")
            assert r.status_code == 200
            return {p["id"]: p for p in r.json()["ports"]}

        assert listed(a) == {} == listed(b)
        for i in range(5):
            r = b.post("/v2.0/ports", json={"port": {"network_id": net_id, "device_id": f"v{i}"}})
            port = r.json()["port"]
            assert port["id"] in listed(a)
            r = a.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": f"n{i}"}})
            assert r.status_code == 200
            assert listed(b)[port["id"]]["name"] == f"n{i}"
            assert b.delete(f"/v2.0/ports/{port['id']}").status_code == 204
            assert port["id"] not in listed(a)
            kept_port = a.post("/v2.0/ports", json={"port": {"network_id": net_id}}).json()
            assert kept_port["port"]["id"] in listed(b)
        assert listed(a) == listed(b)
        assert len(listed(a)) == 5
        a.close()
        b.close()


def _run_bodies(*sends: Any) -> None:
    """Send one small EncodedPieces body through each of sends, all at once."""

    async def main() -> None:
        pieces = [b'{"ports":[', b"", b"]}"]
        calls = (EncodedPieces(pieces)({"type": "http"}, None, send) for send in sends)  # type: ignore[arg-type]
        await asyncio.wait_for(asyncio.gather(*calls), 10)

    asyncio.run(main())


def test_big_bodies_take_turns() -> None:
    """Bodies sent at once go one after the other, each whole before the next begins."""
    log: list[tuple[str, str]] = []

    def sender(name: str) -> Any:
        async def send(message: dict[str, Any]) -> None:
            log.append((name, message["type"]))
            await asyncio.sleep(0.005)  # a client taking its time, within its turn

        return send

    _run_bodies(sender("a"), sender("b"), sender("c"))
    assert [n for n, _ in log] == ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    assert [t for _, t in log[:5]] == ["http.response.start"] + ["http.response.body"] * 4


def test_a_client_that_does_not_read_holds_the_others_up_one_turn_at_most() -> None:
    stalled, done = asyncio.Event(), {}
    began: dict[str, float] = {}

    async def not_reading(message: dict[str, Any]) -> None:
        began.setdefault("a", time.monotonic())
        if message["type"] == "http.response.start":
            await stalled.wait()  # until b is done: a client that stopped reading
        done["a"] = time.monotonic()

    async def reading(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message["body"]:
            done["b"] = time.monotonic()
            stalled.set()

    _run_bodies(not_reading, reading)
    waited = done["b"] - began["a"]
    assert encoded.TURN_S * 0.9 <= waited < encoded.TURN_S + 2
    assert done["a"] >= done["b"]  # a's body was still sent, after b's
