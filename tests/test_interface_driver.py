"""The oVirt interface driver and the network-to-id mapping, on real kernel objects.

Every test works on its own bridge (``tbr<tag>``) and namespaces (``t-ovipam-<tag>...``)
and removes them afterwards, also on failure. Test traffic stays inside them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from dhcp_driver.interface import InterfaceError, OvirtInterfaceDriver
from dhcp_driver.mapping import MappingError, read_mapping, validate_networks, write_mapping

IFF_UP = 0x1
MAC = "fa:16:3e:aa:bb:01"

# -- helpers ---------------------------------------------------------------------------


def link(name: str, namespace: str | None = None) -> Any | None:
    """The link called name in the root netns or in a named one, None if absent."""
    ipr = IPRoute() if namespace is None else IPRoute(netns=namespace, flags=0)
    with ipr:
        try:
            return ipr.link("get", ifname=name)[0]
        except NetlinkError:
            return None


def addresses(name: str, namespace: str) -> set[str]:
    with IPRoute(netns=namespace, flags=0) as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        result = set()
        for msg in ipr.addr("dump", index=index):
            if msg["index"] == index:
                addr = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
                if not addr.startswith("fe80:"):
                    result.add(f"{addr}/{msg['prefixlen']}")
        return result


def is_up(msg: Any) -> bool:
    return bool(msg["flags"] & IFF_UP)


@dataclass
class Lab:
    tag: str
    tmp: Path
    prefix: str = ""
    bridge: str = ""
    network_ids: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = f"t-ovipam-{self.tag}-"
        self.bridge = f"tbr{self.tag}"
        self.mapping = self.tmp / "state" / "dhcp-networks.json"

    def new_id(self) -> str:
        network_id = str(uuid.uuid4())
        self.network_ids.append(network_id)
        return network_id

    def driver(self, prefix: str | None = None) -> OvirtInterfaceDriver:
        return OvirtInterfaceDriver(str(self.mapping), prefix or self.prefix)

    def namespace(self, suffix: str) -> str:
        """Create an extra namespace whose name the teardown will find."""
        name = f"t-ovipam-{self.tag}{suffix}"
        netns.create(name)
        return name

    def cleanup(self) -> None:
        with IPRoute() as ipr:
            names = [OvirtInterfaceDriver.device_names(n)[0] for n in self.network_ids]
            for name in [*names, *self.root_links, self.bridge]:
                for index in ipr.link_lookup(ifname=name):
                    with contextlib.suppress(NetlinkError):
                        ipr.link("del", index=index)
        for name in netns.listnetns():
            if name.startswith(f"t-ovipam-{self.tag}"):
                with contextlib.suppress(OSError):
                    netns.remove(name)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:  # pragma: no cover - the suite runs as root (tools/test.sh)
        pytest.skip("needs root for network namespaces and bridges")
    lab = Lab(tag=secrets.token_hex(3), tmp=tmp_path)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=lab.bridge, kind="bridge")
            ipr.link("set", index=ipr.link_lookup(ifname=lab.bridge)[0], state="up")
        yield lab
    finally:
        lab.cleanup()


# -- the mapping file -----------------------------------------------------------------


def test_mapping_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "vdsm" / "dhcp" / "networks.json"
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    old_umask = os.umask(0o077)
    try:
        assert read_mapping(path) == {}  # a missing file means no networks
        assert write_mapping(path, [{"name": "vm_net-2", "id": b}, {"name": "ovirtmgmt", "id": a}])
    finally:
        os.umask(old_umask)
    assert read_mapping(path) == {a: "ovirtmgmt", b: "vm_net-2"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc == {
        "version": 1,
        "networks": [{"name": "ovirtmgmt", "id": a}, {"name": "vm_net-2", "id": b}],
    }
    # the same set in another order gives the same bytes, and is not rewritten
    inode = path.stat().st_ino
    assert not write_mapping(path, [{"name": "ovirtmgmt", "id": a}, {"name": "vm_net-2", "id": b}])
    assert path.stat().st_ino == inode
    assert write_mapping(path, [])
    assert read_mapping(path) == {}
    assert sorted(os.listdir(path.parent)) == ["networks.json"]  # no temp files left


BAD_NETWORKS = {
    "bad name": [{"name": "-leading-dash", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"}],
    "long name": [{"name": "a" * 16, "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"}],
    "name with newline": [{"name": "net\n", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"}],
    "name with slash": [{"name": "../etc", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"}],
    "bad uuid": [{"name": "net1", "id": "not-a-uuid"}],
    "upper-case uuid": [{"name": "net1", "id": "6F1E2B9C-0D4A-4E57-9A39-2C0C6A7F1B11"}],
    "braced uuid": [{"name": "net1", "id": "{6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11}"}],
    "duplicate name": [
        {"name": "net1", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"},
        {"name": "net1", "id": "0b9d4c1e-55aa-4c8e-8d61-3f3a1a0e9c42"},
    ],
    "duplicate id": [
        {"name": "net1", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"},
        {"name": "net2", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"},
    ],
    "extra key": [{"name": "net1", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11", "x": 1}],
    "missing id": [{"name": "net1"}],
    "not an object": ["net1"],
}


@pytest.mark.parametrize("case", sorted(BAD_NETWORKS))
def test_write_mapping_refuses_bad_input_and_keeps_old_file(tmp_path: Path, case: str) -> None:
    path = tmp_path / "networks.json"
    write_mapping(path, [{"name": "keep", "id": "0b9d4c1e-55aa-4c8e-8d61-3f3a1a0e9c42"}])
    before = path.read_bytes()
    with pytest.raises(MappingError):
        write_mapping(path, BAD_NETWORKS[case])
    with pytest.raises(MappingError):
        validate_networks(BAD_NETWORKS[case])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["networks.json"]


GOOD_ID = "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"
BAD_FILES = {
    "malformed JSON": b'{"version": 1, "networks": [',
    "not an object": b"[]",
    "wrong version": b'{"version": 2, "networks": []}',
    "version as string": b'{"version": "1", "networks": []}',
    "version as bool": b'{"version": true, "networks": []}',
    "no version": b'{"networks": []}',
    "no networks": b'{"version": 1}',
    "networks not a list": b'{"version": 1, "networks": {}}',
    "unknown key": b'{"version": 1, "networks": [], "extra": 1}',
    "repeated key": b'{"version": 1, "version": 1, "networks": []}',
    "bad name": b'{"version": 1, "networks": [{"name": "a b", "id": "%s"}]}' % GOOD_ID.encode(),
    "bad uuid": b'{"version": 1, "networks": [{"name": "ab", "id": "123"}]}',
    "duplicate name": (
        b'{"version": 1, "networks": [{"name": "a", "id": "%s"}, '
        b'{"name": "a", "id": "0b9d4c1e-55aa-4c8e-8d61-3f3a1a0e9c42"}]}' % GOOD_ID.encode()
    ),
    "not UTF-8": b'{"version": 1, "networks": [{"name": "\xff", "id": "x"}]}',
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_read_mapping_refuses_bad_files(tmp_path: Path, case: str) -> None:
    path = tmp_path / "networks.json"
    path.write_bytes(BAD_FILES[case])
    with pytest.raises(MappingError) as err:
        read_mapping(path)
    assert str(path) in str(err.value)


# -- names ------------------------------------------------------------------------------


def test_names_derive_from_the_id_only(tmp_path: Path) -> None:
    driver = OvirtInterfaceDriver(str(tmp_path / "m.json"), "ovirt-ipam-dhcp-")
    network_id = "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"
    assert driver.namespace_name(network_id) == "ovirt-ipam-dhcp-" + network_id
    assert driver.device_names(network_id) == ("ovh6f1e2b9c0d4", "ovd6f1e2b9c0d4")
    for bad in ["../../etc/passwd", "6F1E2B9C-0D4A-4E57-9A39-2C0C6A7F1B11", "net1", "", None]:
        with pytest.raises(InterfaceError):
            driver.namespace_name(bad)  # type: ignore[arg-type]
        with pytest.raises(InterfaceError):
            driver.device_names(bad)  # type: ignore[arg-type]
    for prefix in ["", "a/b", "a b", "x" * 65, "ns\n"]:
        with pytest.raises(InterfaceError):
            OvirtInterfaceDriver(str(tmp_path / "m.json"), prefix)


# -- serves -----------------------------------------------------------------------------


@pytest.mark.root
def test_serves_needs_the_mapping_entry_and_the_bridge(lab: Lab) -> None:
    driver = lab.driver()
    net, other = lab.new_id(), lab.new_id()
    assert not driver.serves(net, lab.bridge)  # no mapping file at all
    write_mapping(lab.mapping, [{"name": lab.bridge, "id": net}])
    assert driver.serves(net, lab.bridge)
    assert not driver.serves(other, lab.bridge)  # id not in the mapping
    write_mapping(lab.mapping, [{"name": "othername", "id": net}])
    assert not driver.serves(net, lab.bridge)  # mapped under another name
    missing = f"tmi{lab.tag}"
    write_mapping(lab.mapping, [{"name": missing, "id": net}])
    assert not driver.serves(net, missing)  # no such bridge
    # a link of that name that is not a bridge does not count
    lab.root_links.append(missing)
    with IPRoute() as ipr:
        ipr.link("add", ifname=missing, kind="veth", peer=f"tmp{lab.tag}")
    assert not driver.serves(net, missing)
    assert not driver.serves("not-a-uuid", lab.bridge)
    assert not driver.serves(net, "bad name")
    lab.mapping.write_text("{broken")
    with pytest.raises(MappingError):
        driver.serves(net, lab.bridge)


# -- plug, init_l3, unplug --------------------------------------------------------------


@pytest.mark.root
def test_plug_new_and_init_l3(lab: Lab) -> None:
    driver = lab.driver()
    net = lab.new_id()
    host_dev, ns_dev = driver.device_names(net)
    namespace = driver.namespace_name(net)
    driver.plug_new(net, MAC.upper(), lab.bridge, 1400)
    driver.init_l3(net, ["198.18.1.2/24", "fd00:1::2/64"])

    assert namespace in netns.listnetns()
    assert driver.plugged_networks() == {net}
    inside = link(ns_dev, namespace)
    assert inside is not None
    assert inside.get("IFLA_ADDRESS") == MAC
    assert inside.get("IFLA_MTU") == 1400
    assert is_up(inside)
    assert is_up(link("lo", namespace))
    assert addresses(ns_dev, namespace) == {"198.18.1.2/24", "fd00:1::2/64"}
    assert link(ns_dev) is None  # the namespace end is not in the caller's netns

    outside = link(host_dev)
    assert outside is not None
    assert outside.get("IFLA_MASTER") == link(lab.bridge)["index"]
    assert outside.get("IFLA_MTU") == 1400
    assert is_up(outside)
    assert link(host_dev, namespace) is None


@pytest.mark.root
def test_plug_new_is_idempotent_and_repairs(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    driver = lab.driver()
    net = lab.new_id()
    host_dev, ns_dev = driver.device_names(net)
    namespace = driver.namespace_name(net)
    driver.plug_new(net, MAC, lab.bridge, 1500)
    first = (link(host_dev)["index"], link(ns_dev, namespace)["index"])

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dhcp_driver.interface"):
        driver.plug_new(net, MAC, lab.bridge, 1500)
    assert caplog.records == []  # nothing to change, nothing changed
    assert (link(host_dev)["index"], link(ns_dev, namespace)["index"]) == first

    # break it: other MAC and MTU inside, host end down and out of the bridge
    with IPRoute(netns=namespace, flags=0) as ipr:
        ipr.link("set", index=first[1], address="fa:16:3e:00:00:99", mtu=1300, state="down")
    with IPRoute() as ipr:
        ipr.link("set", index=first[0], master=0, state="down")
    driver.plug_new(net, MAC, lab.bridge, 1500)
    inside, outside = link(ns_dev, namespace), link(host_dev)
    assert (outside["index"], inside["index"]) == first
    assert inside.get("IFLA_ADDRESS") == MAC
    assert inside.get("IFLA_MTU") == 1500
    assert is_up(inside)
    assert outside.get("IFLA_MASTER") == link(lab.bridge)["index"]
    assert is_up(outside)

    # a new MAC and MTU for the port: fixed in place
    driver.plug_new(net, "fa:16:3e:aa:bb:02", lab.bridge, 1450)
    inside, outside = link(ns_dev, namespace), link(host_dev)
    assert (outside["index"], inside["index"]) == first
    assert inside.get("IFLA_ADDRESS") == "fa:16:3e:aa:bb:02"
    assert inside.get("IFLA_MTU") == outside.get("IFLA_MTU") == 1450


@pytest.mark.root
def test_plug_new_refuses_bad_arguments(lab: Lab) -> None:
    driver = lab.driver()
    net = lab.new_id()
    for args in [
        (net, "01:00:5e:00:00:01", lab.bridge, 1500),  # multicast MAC
        (net, "fa:16:3e:aa:bb", lab.bridge, 1500),
        (net, MAC, "bad/bridge", 1500),
        (net, MAC, lab.bridge, 20),
        (net, MAC, lab.bridge, "1500"),
        ("not-a-uuid", MAC, lab.bridge, 1500),
        (net, MAC, f"tno{lab.tag}", 1500),  # no such bridge
    ]:
        with pytest.raises(InterfaceError):
            driver.plug_new(*args)
    assert driver.plugged_networks() == set()
    with pytest.raises(InterfaceError):
        driver.init_l3(net, ["198.18.1.2/24"])  # not plugged


@pytest.mark.root
def test_init_l3_sets_exactly_the_addresses(lab: Lab) -> None:
    driver = lab.driver()
    net = lab.new_id()
    _, ns_dev = driver.device_names(net)
    namespace = driver.namespace_name(net)
    driver.plug_new(net, MAC, lab.bridge, 1500)
    driver.init_l3(net, ["198.18.2.2/24", "198.18.2.3/24", "fd00:2::2/64"])
    assert addresses(ns_dev, namespace) == {"198.18.2.2/24", "198.18.2.3/24", "fd00:2::2/64"}
    # dropping the primary address must not lose the secondary one that stays
    driver.init_l3(net, ["198.18.2.3/24", "198.18.3.2/25"])
    assert addresses(ns_dev, namespace) == {"198.18.2.3/24", "198.18.3.2/25"}
    driver.init_l3(net, ["198.18.2.3/16"])  # same IP, other prefix length
    assert addresses(ns_dev, namespace) == {"198.18.2.3/16"}
    driver.init_l3(net, [])
    assert addresses(ns_dev, namespace) == set()
    with pytest.raises(InterfaceError):
        driver.init_l3(net, ["198.18.2.300/24"])
    with pytest.raises(InterfaceError):
        driver.init_l3(net, "198.18.2.3/24")  # type: ignore[arg-type]


@pytest.mark.root
def test_unplug_removes_both_and_is_idempotent(lab: Lab) -> None:
    driver = lab.driver()
    net = lab.new_id()
    host_dev, _ = driver.device_names(net)
    driver.plug_new(net, MAC, lab.bridge, 1500)
    driver.unplug(net)
    assert driver.namespace_name(net) not in netns.listnetns()
    assert link(host_dev) is None
    assert driver.plugged_networks() == set()
    driver.unplug(net)  # nothing left: no error


@pytest.mark.root
def test_cleanup_stale(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    driver = lab.driver()
    kept, stale, orphan, foreign = lab.new_id(), lab.new_id(), lab.new_id(), lab.new_id()
    driver.plug_new(kept, MAC, lab.bridge, 1500)
    driver.plug_new(stale, "fa:16:3e:aa:bb:03", lab.bridge, 1500)
    kept_index = link(driver.device_names(kept)[0])["index"]
    # a veth of an interrupted plug: both ends still in the caller's netns
    orphan_host, orphan_ns = driver.device_names(orphan)
    lab.root_links.append(orphan_ns)
    with IPRoute() as ipr:
        ipr.link("add", ifname=orphan_host, kind="veth", peer=orphan_ns)
    # another driver instance's plug (another prefix) is not ours to clean
    other = lab.driver(prefix=f"t-ovipam-{lab.tag}x-")
    other.plug_new(foreign, "fa:16:3e:aa:bb:04", lab.bridge, 1500)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dhcp_driver.interface"):
        driver.cleanup_stale({kept})

    assert driver.plugged_networks() == {kept}
    assert link(driver.device_names(kept)[0])["index"] == kept_index
    assert link(driver.device_names(stale)[0]) is None
    assert link(orphan_host) is None
    assert other.plugged_networks() == {foreign}
    assert link(other.device_names(foreign)[0]) is not None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert stale in logged
    assert orphan_host in logged
    assert kept not in logged

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dhcp_driver.interface"):
        driver.cleanup_stale({kept})
    assert caplog.records == []
    driver.cleanup_stale(set())
    assert driver.plugged_networks() == set()
    assert link(driver.device_names(kept)[0]) is None


# -- real traffic -------------------------------------------------------------------


def run_in_namespace(namespace: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        preexec_fn=lambda: netns.setns(namespace, flags=0),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **kwargs,
    )


@pytest.mark.root
def test_a_client_on_the_bridge_reaches_the_dhcp_namespace(lab: Lab) -> None:
    driver = lab.driver()
    net = lab.new_id()
    driver.plug_new(net, MAC, lab.bridge, 1500)
    driver.init_l3(net, ["198.18.5.2/24"])

    client = lab.namespace("cl")
    client_host = f"tcl{lab.tag}"
    lab.root_links.append(client_host)
    with IPRoute() as ipr:
        ipr.link(
            "add", ifname=client_host, kind="veth", peer={"ifname": "eth0", "net_ns_fd": client}
        )
        index = ipr.link_lookup(ifname=client_host)[0]
        ipr.link("set", index=index, master=link(lab.bridge)["index"], state="up")
    with IPRoute(netns=client, flags=0) as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=index, address="198.18.5.10", prefixlen=24)
        ipr.link("set", index=index, state="up")

    ping = run_in_namespace(client, ["/usr/bin/busybox", "ping", "-c1", "-W2", "198.18.5.2"])
    assert ping.returncode == 0, ping.stdout + ping.stderr


# -- the agent inside a "host" namespace (as in the lab) ------------------------------

PLUG_SCRIPT = textwrap.dedent("""
    import json, sys
    from dhcp_driver.interface import OvirtInterfaceDriver
    from dhcp_driver.mapping import write_mapping
    path, prefix, bridge, net, mode = sys.argv[1:6]
    driver = OvirtInterfaceDriver(path, prefix)
    if mode == "plug":
        write_mapping(path, [{"name": bridge, "id": net}])
        out = {"serves": driver.serves(net, bridge)}
        driver.plug_new(net, "fa:16:3e:12:34:56", bridge, 1400)
        driver.init_l3(net, ["198.18.6.2/24"])
        driver.plug_new(net, "fa:16:3e:12:34:56", bridge, 1400)
    else:
        driver.cleanup_stale(set())
        out = {}
    out["plugged"] = sorted(driver.plugged_networks())
    print(json.dumps(out))
""")


@pytest.mark.root
def test_driver_inside_a_host_namespace(lab: Lab) -> None:
    host = lab.namespace("host")
    with IPRoute(netns=host, flags=0) as ipr:
        ipr.link("add", ifname="br-lab", kind="bridge")
        bridge_index = ipr.link_lookup(ifname="br-lab")[0]
        ipr.link("set", index=bridge_index, state="up")
    driver = lab.driver()
    net = lab.new_id()
    host_dev, ns_dev = driver.device_names(net)
    namespace = driver.namespace_name(net)
    argv = [sys.executable, "-c", PLUG_SCRIPT, str(lab.mapping), lab.prefix, "br-lab", net]

    done = run_in_namespace(host, [*argv, "plug"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"serves": True, "plugged": [net]}
    outside = link(host_dev, host)
    assert outside is not None and outside.get("IFLA_MASTER") == bridge_index and is_up(outside)
    assert link(host_dev) is None  # nothing in the machine's own netns
    inside = link(ns_dev, namespace)
    assert inside.get("IFLA_ADDRESS") == "fa:16:3e:12:34:56" and is_up(inside)
    assert addresses(ns_dev, namespace) == {"198.18.6.2/24"}

    done = run_in_namespace(host, [*argv, "cleanup"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"plugged": []}
    assert namespace not in netns.listnetns()
    assert link(host_dev, host) is None
