"""Host.setDHCP end to end: the host service process serving JSON-RPC over the bus,
the real DHCP agent it starts, reconciles and stops, driven by ``host-call``; the
host's networks taken from VDSM's running configuration. (The verb as VDSM carries
it, and its schema entries: test_vdsm_plugin.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.mapping import read_mapping, write_mapping
from ipam.lab.netparts import Bridge, rand
from ipam.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent


class HostWorld:
    def __init__(self, tmp: Path, engine, bus: str | None = None) -> None:  # type: ignore[no-untyped-def]
        """``bus``: the engine's transport URL, when the engine's directory is not tmp."""
        self.tmp, self.engine = tmp, engine
        bus = bus or f"filesystem://{tmp}/state/bus"
        self.api = httpx.Client(base_url=engine.url, timeout=30)
        self.bridges = [Bridge(), Bridge()]
        self.stranger = Bridge()  # a kernel bridge VDSM does not know (virbr0, docker0)
        self.nets = []
        for i, br in enumerate(self.bridges):
            net = self._post("networks", {"name": br.name})
            self._post("subnets", {"network_id": net["id"], "cidr": f"10.5{i}.0.0/24"})
            self.nets.append(net)
        self.host = f"h{rand()}"
        self.prefix = f"t-{rand()}-"
        self.mapping = tmp / "vdsm" / "dhcp-networks.json"
        self.state = tmp / "host-state"
        self.conf = tmp / "host.conf"
        # VDSM's running configuration: both networks bridged, one more not (no bridge).
        self.netconf = tmp / "vdsm-netconf"
        (self.netconf / "nets").mkdir(parents=True)
        for br in self.bridges:
            attrs = {"bridged": True, "switch": "legacy", "nic": "eth0", "mtu": 1500}
            (self.netconf / "nets" / br.name).write_text(json.dumps(attrs))
        (self.netconf / "nets" / "nobridge").write_text(
            json.dumps({"bridged": False, "switch": "legacy", "nic": "eth1"})
        )
        self.conf.write_text(
            textwrap.dedent(f"""\
            [DEFAULT]
            state_path = {self.state}
            transport_url = {bus}
            [dhcp_agent]
            host = {self.host}
            mapping_file = {self.mapping}
            namespace_prefix = {self.prefix}
            heartbeat_interval = 0.5
            [host]
            heartbeat_interval = 0.3
            agent_manager = direct
            max_networks = 8
            vdsm_netconf_dir = {self.netconf}
            """)
        )
        log = open(tmp / "host-service.log", "w")  # noqa: SIM115
        self.service = subprocess.Popen(
            [sys.executable, "-m", "ipam.cli.main", "host", "--config-file", str(self.conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def _post(self, kind: str, body: dict) -> dict:
        resp = self.api.post(f"/v2.0/{kind}", json={kind[:-1]: body})
        assert resp.status_code == 201, resp.text
        return resp.json()[kind[:-1]]

    def entry(self, i: int) -> dict[str, str]:
        return {"name": self.nets[i]["vdsm_name"], "id": self.nets[i]["id"]}

    def call(self, verb: str, *params: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ipam.cli.main",
                "host-call",
                self.host,
                "Host",
                verb,
                *params,
                "--timeout",
                "30",
                "--config-file",
                str(self.conf),
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )

    def set_dhcp(self, entries: list[dict[str, str]]) -> subprocess.CompletedProcess:
        return self.call("setDHCP", f"networks={json.dumps(entries)}")

    def agent_pid(self) -> int | None:
        try:
            pid = int((self.state / "dhcp-agent.pid").read_text())
        except (OSError, ValueError):
            return None
        try:  # (it may exit while it is looked at)
            return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
        except psutil.NoSuchProcess:
            return None

    def dnsmasq(self) -> dict[str, int]:
        """network id -> pid of the dnsmasq serving it for this host."""
        out = {}
        for proc in psutil.process_iter(["name", "cmdline"]):
            for arg in proc.info["cmdline"] or []:
                if proc.info["name"] == "dnsmasq" and arg.startswith(f"--conf-file={self.state}"):
                    out[Path(arg.split("=", 1)[1]).parent.name] = proc.pid
        return out

    def close(self) -> None:
        self.service.send_signal(signal.SIGTERM)
        self.service.wait(30)
        pid = self.agent_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            psutil.Process(pid).wait(30)
        for pid in self.dnsmasq().values():
            os.kill(pid, signal.SIGTERM)
        OvirtInterfaceDriver(str(self.mapping), self.prefix).cleanup_stale(set())
        for br in [*self.bridges, self.stranger]:
            br.remove()
        self.api.close()


#: The DHCP manager would own Host.setDHCP: these tests drive the verb by hand.
ENGINE_CONF = "[dhcp]\nmanage_placement = false\n"


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory, module_engine_factory):  # type: ignore[no-untyped-def]
    """The module's one engine (its state in its directory's state/), which every world
    of the module uses: each world has a host, bridges and networks of its own."""
    tmp = tmp_path_factory.mktemp("host-world")
    return tmp, module_engine_factory(ENGINE_CONF, tmp=tmp)


@pytest.fixture
def world(tmp_path: Path, shared_engine):  # type: ignore[no-untyped-def]
    """A world of the test's own (a host never called before, its own bridges and
    networks) on the module's engine: for tests that start from a fresh host."""
    engine_tmp, engine = shared_engine
    w = HostWorld(tmp_path, engine, bus=f"filesystem://{engine_tmp}/state/bus")
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def shared_world(shared_engine):  # type: ignore[no-untyped-def]
    """One world for the module's tests that bring it to the state they need themselves
    (network 0 mapped, its agent running) or only look at it (the heartbeat)."""
    tmp, engine = shared_engine
    w = HostWorld(tmp, engine)
    try:
        yield w
    finally:
        w.close()


@pytest.mark.root
def test_set_dhcp_starts_reconciles_and_stops_the_agent(world: HostWorld) -> None:
    done = world.set_dhcp([world.entry(0)])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is True
    agent = wait_for(world.agent_pid, 15, "agent started")
    first = wait_for(lambda: world.dnsmasq().get(world.nets[0]["id"]), 20, "network 0 served")
    stamp = os.stat(world.mapping).st_ino

    again = world.set_dhcp([world.entry(0)])  # idempotent: nothing changes or restarts
    assert again.returncode == 0 and os.stat(world.mapping).st_ino == stamp
    assert world.agent_pid() == agent and world.dnsmasq() == {world.nets[0]["id"]: first}

    both = world.set_dhcp([world.entry(0), world.entry(1)])
    assert both.returncode == 0, both.stderr
    wait_for(lambda: world.nets[1]["id"] in world.dnsmasq(), 20, "network 1 served")
    assert world.agent_pid() == agent  # reconciled by signal, not restarted
    assert world.dnsmasq()[world.nets[0]["id"]] == first  # DHCP never interrupted there

    state = json.loads(world.call("getDHCP").stdout)
    assert state["agent"] == {"running": True, "pid": agent}
    assert sorted(n["id"] for n in state["networks"]) == sorted(n["id"] for n in world.nets)

    off = world.set_dhcp([])
    assert off.returncode == 0, off.stderr
    assert world.agent_pid() is None and world.dnsmasq() == {}
    assert read_mapping(world.mapping) == {}
    assert OvirtInterfaceDriver(str(world.mapping), world.prefix).plugged_networks() == set()
    assert world.set_dhcp([]).returncode == 0  # twice is fine


@pytest.mark.root
def test_a_sighup_while_the_agent_starts_does_not_end_it(world: HostWorld) -> None:
    """Two Host.setDHCP calls in a row: the second's SIGHUP ("re-read the mapping") may
    reach the agent before it installed its handler; it must not end the agent."""
    assert world.set_dhcp([world.entry(0)]).returncode == 0
    agent = wait_for(world.agent_pid, 15, "agent started")
    os.kill(agent, signal.SIGHUP)  # at once, as the host service's reconcile does
    wait_for(lambda: world.nets[0]["id"] in world.dnsmasq(), 20, "network 0 served")
    assert world.agent_pid() == agent


@pytest.mark.root
@pytest.mark.parametrize(
    "bad",
    [
        [{"name": "bad name", "id": str(uuid.uuid4())}],
        [{"name": "net1", "id": "not-a-uuid"}],
        [
            {"name": "net1", "id": "11111111-1111-1111-1111-111111111111"},
            {"name": "net1", "id": "22222222-2222-2222-2222-222222222222"},
        ],
        [{"name": "a\nb", "id": str(uuid.uuid4())}],
        [{"name": f"n{i}", "id": str(uuid.uuid4())} for i in range(9)],  # max_networks = 8
        "not a list",
    ],
)
def test_invalid_input_is_a_jsonrpc_error_and_changes_nothing(shared_world: HostWorld, bad) -> None:  # type: ignore[no-untyped-def]
    world = shared_world  # each case first sets the mapping to network 0 alone
    assert world.set_dhcp([world.entry(0)]).returncode == 0
    before = world.mapping.read_bytes()
    agent = wait_for(world.agent_pid, 15, "agent started")
    refused = world.call("setDHCP", f"networks={json.dumps(bad)}")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error 21: ")
    assert world.mapping.read_bytes() == before and world.agent_pid() == agent


@pytest.mark.root
def test_unknown_verb_and_missing_params(world: HostWorld) -> None:
    # As VDSM in strict mode: Invalid params before the verb runs (VDSM's lax mode: -32603).
    missing = world.call("setDHCP")
    assert missing.returncode == 1 and missing.stderr.startswith("Error -32602: "), missing.stderr
    assert "networks" in missing.stderr
    extra = world.call("setDHCP", "networks=[]", "force=true")
    assert extra.returncode == 1 and extra.stderr.startswith("Error -32602: "), extra.stderr
    assert not world.mapping.exists() and world.agent_pid() is None


@pytest.mark.root
def test_two_concurrent_calls_end_in_one_list_whole(world: HostWorld) -> None:
    a, b = [world.entry(0)], [world.entry(1), world.entry(0)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipam.cli.main",
                "host-call",
                world.host,
                "Host",
                "setDHCP",
                f"networks={json.dumps(x)}",
                "--config-file",
                str(world.conf),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for x in (a, b)
    ]
    assert [p.wait(90) for p in procs] == [0, 0]
    final = read_mapping(world.mapping)
    assert final in ({e["id"]: e["name"] for e in a}, {e["id"]: e["name"] for e in b})
    state = json.loads(world.call("getDHCP").stdout)
    assert {n["id"]: n["name"] for n in state["networks"]} == final


@pytest.mark.root
def test_host_heartbeat_reports_the_bridges(shared_world: HostWorld) -> None:
    world = shared_world  # the bridges reported do not depend on what was called
    db = sa.create_engine(f"sqlite:///{world.tmp}/state/ovirt-ipam.sqlite")

    def bridges() -> list[str] | None:
        with db.connect() as conn:
            row = conn.execute(
                sa.text("select bridges from hosts where name = :n"), {"n": world.host}
            ).first()
        return json.loads(row[0]) if row else None

    got = wait_for(bridges, 15, "the host's heartbeat in the engine")
    # VDSM's bridged networks whose bridge exists; not a kernel bridge VDSM does not know.
    assert sorted(got) == sorted(b.name for b in world.bridges)
    assert world.stranger.name not in got


_WRITER = """
import sys
from dhcp_driver.mapping import write_mapping
path, a, b = sys.argv[1], {"name": "neta", "id": sys.argv[2]}, {"name": "netb", "id": sys.argv[3]}
print("ready", flush=True)
i = 0
while True:
    write_mapping(path, [a] if i % 2 else [a, b])
    i += 1
"""


def test_a_crash_while_writing_leaves_the_old_or_the_new_mapping(tmp_path: Path) -> None:
    path = tmp_path / "m" / "dhcp-networks.json"
    ida, idb = str(uuid.uuid4()), str(uuid.uuid4())
    write_mapping(path, [{"name": "neta", "id": ida}])
    allowed = [{ida: "neta"}, {ida: "neta", idb: "netb"}]
    for i in range(15):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), ida, idb], stdout=subprocess.PIPE, cwd=ROOT
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        wait_for(lambda: os.stat(path).st_mtime_ns > 0, 1, "a write")  # it writes in a loop
        for _ in range(i * 50):  # crash at a different point of the loop each time
            os.stat(path)
        proc.kill()
        proc.wait()
        assert read_mapping(path) in allowed
