"""The engine's bus server, in a real engine process, against a fake agent built only
from ipam.bus.messaging and ipam.bus.contracts: sync, events routed per network,
acknowledgements, heartbeats, releases, malformed messages. On the default
filesystem transport under the engine's state directory, and once on RabbitMQ."""

from __future__ import annotations

import ipaddress
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import kombu
import pytest

from ipam.bus import contracts as C
from ipam.bus import messaging
from ipam.bus.messaging import Bus
from ipam.polling import wait_for

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class FakeAgent:
    """What the DHCP agent does on the bus, and nothing else."""

    def __init__(self, url: str, host: str) -> None:
        self.host = host
        self.bus = Bus(url, name=f"fake-agent@{host}")
        self.events: list[tuple[C.Envelope, C.BaseModel]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.bus.consume,
            args=(C.agent_queue(host), lambda e, b: self.events.append((e, b)), self._stop),
            daemon=True,
        )
        self._thread.start()

    def sync(self, networks: list[str]) -> C.SyncReply:
        req = C.make("sync.request", C.SyncRequest(host=self.host, networks=networks), self.host)
        env, body = self.bus.call(C.ENGINE_QUEUE, req, C.reply_queue(self.host), timeout=20)
        assert env.type == "sync.reply"
        assert isinstance(body, C.SyncReply)
        return body

    def send(self, type_: str, body: C.BaseModel) -> None:
        self.bus.publish(C.ENGINE_QUEUE, C.make(type_, body, self.host))

    def event(self, type_: str, match: Callable[[C.BaseModel], bool]) -> C.BaseModel:
        def find() -> C.BaseModel | None:
            return next((b for e, b in list(self.events) if e.type == type_ and match(b)), None)

        return wait_for(find, 20, f"{type_} on {C.agent_queue(self.host)}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.bus.close()


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/v2.0", timeout=30)

    def post(self, kind: str, body: dict) -> dict:
        r = self.http.post(f"/{kind}s", json={kind: body})
        assert r.status_code == 201, r.text
        return r.json()[kind]

    def get(self, kind: str, id_: str) -> dict:
        r = self.http.get(f"/{kind}s/{id_}")
        assert r.status_code == 200, r.text
        return r.json()[kind]

    def delete(self, kind: str, id_: str) -> None:
        r = self.http.delete(f"/{kind}s/{id_}")
        assert r.status_code == 204, r.text

    def network(self, name: str, cidr: str) -> tuple[dict, dict]:
        net = self.post("network", {"name": name})
        sub = self.post("subnet", {"network_id": net["id"], "cidr": cidr})
        return net, sub


#: The fake agent never acknowledges a port: a port created on a network it reports
#: serving is answered DOWN after ready_timeout (10 s by default), which these tests
#: do not look at; 1 s bounds that wait.
ENGINE_CONF = "[dhcp]\nready_timeout = 1\n"


@pytest.fixture
def world(engine_factory: Callable, tmp_path: Path) -> Iterator[tuple]:
    engine = engine_factory(ENGINE_CONF)
    agent = FakeAgent(f"filesystem://{tmp_path}/state/bus", f"host-{uuid.uuid4().hex[:8]}")
    yield engine, agent, Api(engine.url)
    agent.close()


def agent_row(tmp_path: Path, host: str) -> tuple | None:
    with sqlite3.connect(tmp_path / "state" / "ovirt-ipam.sqlite") as db:
        return db.execute(
            "SELECT networks, status, started_at, last_seen FROM dhcp_agents WHERE host = ?",
            (host,),
        ).fetchone()


def check_sync_and_events(api: Api, agent: FakeAgent) -> None:
    net, sub = api.network("red", "10.1.0.0/24")
    other, _ = api.network("blue", "10.2.0.0/24")
    vm1 = api.post("port", {"network_id": net["id"], "device_id": "vm-1", "device_owner": "oVirt"})
    vm2 = api.post("port", {"network_id": net["id"], "mac_address": "56:6f:1a:2b:00:01"})
    gone = str(uuid.uuid4())

    reply = agent.sync([net["id"], gone])
    assert reply.missing == [gone]
    (state,) = reply.networks
    assert state.network.id == net["id"]
    assert state.network.vdsm_name == "red"
    assert state.network.mtu == 1500
    assert [s.id for s in state.subnets] == [sub["id"]]
    assert state.subnets[0].cidr == "10.1.0.0/24" and state.subnets[0].enable_dhcp
    dhcp = state.dhcp_port
    assert dhcp is not None and dhcp.device_owner == "network:dhcp"
    assert len(dhcp.fixed_ips) == 1 and dhcp.fixed_ips[0].subnet_id == sub["id"]
    assert ipaddress.ip_address(dhcp.fixed_ips[0].ip_address) in ipaddress.ip_network("10.1.0.0/24")
    by_id = {p.id: p for p in state.ports}
    assert set(by_id) == {vm1["id"], vm2["id"], dhcp.id}
    assert by_id[vm2["id"]].mac_address == "56:6f:1a:2b:00:01"
    assert by_id[vm1["id"]].fixed_ips[0].ip_address == vm1["fixed_ips"][0]["ip_address"]
    shown = api.get("port", dhcp.id)
    assert shown["device_id"] == f"dhcp-{agent.host}"
    assert shown["binding:host_id"] == agent.host
    assert shown["name"] == f"dhcp-{agent.host}"

    # Syncing again keeps the same DHCP port.
    assert agent.sync([net["id"]]).networks[0].dhcp_port == dhcp

    # A port on the served network is published to the agent; one elsewhere is not.
    elsewhere = api.post("port", {"network_id": other["id"], "device_id": "vm-x"})
    vm3 = api.post("port", {"network_id": net["id"], "device_id": "vm-3"})
    created = agent.event("port.update", lambda b: b.port.id == vm3["id"])
    assert created.port.fixed_ips[0].ip_address == vm3["fixed_ips"][0]["ip_address"]
    assert created.port.revision_number == vm3["revision_number"]
    updated = api.http.put(f"/ports/{vm3['id']}", json={"port": {"name": "renamed"}}).json()
    agent.event(
        "port.update",
        lambda b: (
            b.port.id == vm3["id"] and b.port.revision_number == updated["port"]["revision_number"]
        ),
    )
    api.delete("port", vm3["id"])
    deleted = agent.event("port.delete", lambda b: b.port.id == vm3["id"])
    assert deleted.port.mac_address == vm3["mac_address"]
    # Events of one network come in order, and none of the other network's came.
    types = [(e.type, b.port.id) for e, b in agent.events if e.type.startswith("port.")]
    assert [t for t, pid in types if pid == vm3["id"]] == [
        "port.update",
        "port.update",
        "port.delete",
    ]
    assert all(pid != elsewhere["id"] for _, pid in types)

    # Subnet and network changes.
    api.http.put(f"/subnets/{sub['id']}", json={"subnet": {"dns_nameservers": ["10.1.0.53"]}})
    agent.event("subnet.update", lambda b: b.subnet_id == sub["id"] and b.network_id == net["id"])
    api.http.put(f"/networks/{net['id']}", json={"network": {"mtu": 1400}})
    agent.event("network.update", lambda b: b.network_id == net["id"])
    assert agent.sync([net["id"]]).networks[0].network.mtu == 1400


def test_sync_events_acks_heartbeat_release(world: tuple, tmp_path: Path) -> None:
    engine, agent, api = world
    check_sync_and_events(api, agent)
    net = next(n for n in api.http.get("/networks").json()["networks"] if n["name"] == "red")
    state = agent.sync([net["id"]]).networks[0]
    vm = next(p for p in state.ports if p.device_owner == "oVirt")
    assert api.get("port", vm.id)["status"] == "DOWN"

    # An acknowledgement of an old revision records it and changes nothing else.
    stale = C.AckedPort(id=vm.id, revision_number=vm.revision_number - 1)
    agent.send("port.ack", C.PortAck(host=agent.host, network_id=net["id"], ports=[stale]))
    wait_for(lambda: "1 acknowledged, 1 recorded, 0 now ACTIVE" in engine.logs(), 20, "ack log")
    assert api.get("port", vm.id)["status"] == "DOWN"
    # At the current revision: ACTIVE, and the revision stays.
    acked = [
        C.AckedPort(id=vm.id, revision_number=vm.revision_number),
        C.AckedPort(id=str(uuid.uuid4()), revision_number=1),  # a port that is gone
    ]
    agent.send("port.ack", C.PortAck(host=agent.host, network_id=net["id"], ports=acked))
    wait_for(lambda: api.get("port", vm.id)["status"] == "ACTIVE", 20, "port ACTIVE")
    assert api.get("port", vm.id)["revision_number"] == vm.revision_number
    assert (
        f"Port acks from host {agent.host} on network {net['id']}: 2 acknowledged, 1 recorded, "
        "1 now ACTIVE" in engine.logs()
    )
    with sqlite3.connect(tmp_path / "state" / "ovirt-ipam.sqlite") as db:
        assert db.execute(
            "SELECT revision_number FROM port_acks WHERE port_id = ? AND host = ?",
            (vm.id, agent.host),
        ).fetchall() == [(vm.revision_number,)]

    # Heartbeat: the agent's row, with the networks it lists.
    hb = C.Heartbeat(
        host=agent.host,
        started_at=1700000000.25,
        networks=[C.ServedNetworkReport(id=net["id"], ports=3, dnsmasq="running")],
    )
    agent.send("agent.heartbeat", hb)

    def row_with_status() -> tuple | None:
        row = agent_row(tmp_path, agent.host)
        return row if row and row[1] else None

    networks, status, started_at, last_seen = wait_for(row_with_status, 20, "heartbeat row")
    assert networks == f'["{net["id"]}"]'
    assert started_at == 1700000000.25 and last_seen > started_at
    assert '"dnsmasq": "running"' in status or '"dnsmasq":"running"' in status

    # Release: unsubscribed, DHCP port gone, no more events.
    dhcp_id = state.dhcp_port.id
    agent.send("network.release", C.NetworkRelease(host=agent.host, network_id=net["id"]))
    wait_for(lambda: api.http.get(f"/ports/{dhcp_id}").status_code == 404, 20, "DHCP port gone")
    wait_for(lambda: agent_row(tmp_path, agent.host)[0] == "[]", 20, "unsubscribed")
    # A POST returns after its publication; an event of a network still served after
    # it shows that nothing came for the released one.
    marker = api.post("port", {"network_id": net["id"], "device_id": "after-release"})
    other, _ = api.network("yellow", "10.4.0.0/24")
    agent.sync([other["id"]])
    barrier = api.post("port", {"network_id": other["id"], "device_id": "barrier"})
    agent.event("port.update", lambda b: b.port.id == barrier["id"])
    assert not [
        b for _, b in agent.events if getattr(b, "port", None) and b.port.id == marker["id"]
    ]


def test_a_network_without_a_bridge_is_never_sent_to_an_agent(world: tuple) -> None:
    """vdsm_name null (a free-text name, as oVirt engine creates networks): a sync
    answers it as missing (the contract's NetworkInfo needs a VDSM name), without a
    DHCP port; once it has a bridge, it is served like any other."""
    engine, agent, api = world
    net, _ = api.network("VM Network", "10.3.0.0/24")
    assert net["vdsm_name"] is None
    reply = agent.sync([net["id"]])
    assert (reply.networks, reply.missing) == ([], [net["id"]])
    ports = api.http.get("/ports", params={"network_id": net["id"]}).json()["ports"]
    assert ports == []  # no DHCP port was allocated for it
    assert "has no bridge" in engine.logs()
    api.http.put(f"/networks/{net['id']}", json={"network": {"vdsm_name": "vmnet3"}})
    (state,) = agent.sync([net["id"]]).networks
    assert state.network.vdsm_name == "vmnet3" and state.dhcp_port is not None


def test_malformed_message_is_logged_and_engine_keeps_serving(world: tuple, tmp_path: Path) -> None:
    engine, agent, api = world
    net, _ = api.network("green", "10.3.0.0/24")
    with messaging.connection(f"filesystem://{tmp_path}/state/bus") as conn:
        conn.Producer(serializer=None).publish(
            b'{"v": 1, "type": "sync.request", "body": {"host": "../x"}}',
            exchange="",
            routing_key=C.ENGINE_QUEUE,
            content_type="application/json",
        )
    # A well-formed message the engine does not handle is dropped as well.
    agent.send("port.update", C.PortEvent(port=agent.sync([net["id"]]).networks[0].dhcp_port))
    wait_for(lambda: "Dropped a malformed message on ovirt-ipam.engine" in engine.logs(), 20, "log")
    assert "invalid envelope" in engine.logs()
    wait_for(lambda: "not a message for the engine" in engine.logs(), 20, "log of port.update")
    reply = agent.sync([net["id"]])
    assert reply.networks[0].network.id == net["id"]
    assert engine.proc.poll() is None


@pytest.mark.rabbitmq
def test_sync_and_events_on_rabbitmq(engine_factory: Callable) -> None:
    engine = engine_factory(f"[DEFAULT]\ntransport_url = {AMQP_URL}\n")
    host = f"rmq-{uuid.uuid4().hex[:8]}"
    agent = FakeAgent(AMQP_URL, host)
    try:
        check_sync_and_events(Api(engine.url), agent)
        assert "bus=amqp://guest:****@127.0.0.1:5672/" in engine.logs()
        assert "guest:guest" not in engine.logs()
    finally:
        agent.close()
        engine.stop()
        with kombu.Connection(AMQP_URL) as conn:
            channel = conn.channel()
            for queue in (C.agent_queue(host), C.reply_queue(host)):
                channel.queue_delete(queue)
            channel.queue_delete(C.ENGINE_QUEUE, if_empty=True)
