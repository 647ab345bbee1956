"""The oVirt interface driver: where the DHCP agent's dnsmasq gets its network interface.

Shaped like Neutron's interface drivers (``plug_new``, ``init_l3``, ``unplug``), for
oVirt hosts, where every VM network is a Linux bridge named after the network's VDSM
name.

For each network this host serves, the driver builds::

    caller's netns (the host)               named netns <prefix><network id>
    bridge <vdsm name>
      └── ovh<11 hex of the id>  ══veth══  ovd<11 hex of the id>  (DHCP port MAC, IPs, MTU)
                                            lo (up)

- **Who decides.** :meth:`OvirtInterfaceDriver.serves` says yes only if the network id
  is in the mapping written by ``Host.setDHCP`` (see :mod:`dhcp_driver.mapping`) under
  that VDSM name, and a bridge of that name exists in the caller's network namespace;
  where VDSM runs (its running configuration, ``netconf_dir``, exists), also only if
  VDSM has that network as a bridged network: the host service reports the same.
- **Names** of namespaces and devices are derived from the network id only (checked to
  be a canonical UUID), never from user text; the namespace prefix is configuration and
  checked at construction. Device names are 14 characters (Linux allows 15).
- **Where.** The bridge and the host end of the veth live in the *caller's current*
  network namespace (in the lab, the agent runs inside a "host" namespace); the DHCP
  namespace is a named one (``/run/netns/<name>``). Named namespaces are global to the
  machine: two agents on one machine (lab hosts) need different prefixes.
- **Idempotent.** Plugging what is plugged changes nothing; a wrong MAC, MTU, bridge or
  state is corrected in place; a broken pair is rebuilt. Unplugging what is not plugged
  is a no-op.

Everything is done with pyroute2 (no ``ip`` commands). Each call opens its own netlink
sockets and closes them before returning.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable
from typing import Any

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from dhcp_driver.mapping import is_canonical_uuid, is_vdsm_name, read_mapping
from dhcp_driver.netns import entered as _entered
from dhcp_driver.netns import iproute_in as _iproute
from dhcp_driver.netns import netns_fd as _netns_fd
from ipam.bus.contracts import is_mac
from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import vdsm_networks

__all__ = [
    "DEFAULT_NAMESPACE_PREFIX",
    "HOST_DEVICE_PREFIX",
    "NS_DEVICE_PREFIX",
    "InterfaceError",
    "OvirtInterfaceDriver",
]

LOG = logging.getLogger(__name__)

DEFAULT_NAMESPACE_PREFIX = "ovirt-ipam-dhcp-"
HOST_DEVICE_PREFIX = "ovh"
NS_DEVICE_PREFIX = "ovd"
_ID_CHARS = 11  # 3 + 11 = 14 characters, within IFNAMSIZ - 1
_HOST_DEVICE = re.compile(rf"{HOST_DEVICE_PREFIX}[0-9a-f]{{{_ID_CHARS}}}")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MIN_MTU, _MAX_MTU = 68, 65535
_IFF_UP = 0x1
_IFA_F_NODAD = 0x02


class InterfaceError(Exception):
    """The driver cannot do what was asked (bad argument, missing bridge, ...)."""


# -- argument checks ---------------------------------------------------------------


#: IPv6 on the DHCP interface: no duplicate address detection (its addresses, the
#: link-local one included, are usable at once), and no router advertisements taken
#: from the network (a DHCP namespace needs no address or route of its own from them).
IPV6_SETTINGS = {"accept_dad": "0", "accept_ra": "0", "autoconf": "0"}


def _check_network_id(network_id: object) -> str:
    if not is_canonical_uuid(network_id):
        raise InterfaceError(f"network id {network_id!r} is not a canonical UUID")
    return network_id


def _check_mac(mac_address: object) -> str:
    if not isinstance(mac_address, str) or not is_mac(mac_address.lower()):
        raise InterfaceError(f"MAC address {mac_address!r} is not of the form xx:xx:xx:xx:xx:xx")
    mac = mac_address.lower()
    first = int(mac[:2], 16)
    if first & 1 or mac == "00:00:00:00:00:00":
        raise InterfaceError(f"MAC address {mac_address!r} is not a unicast address")
    return mac


def _check_bridge(bridge: object) -> str:
    if not is_vdsm_name(bridge):
        raise InterfaceError(f"bridge name {bridge!r} is not a valid VDSM network name")
    return bridge


def _check_mtu(mtu: object) -> int:
    if type(mtu) is not int or not _MIN_MTU <= mtu <= _MAX_MTU:
        raise InterfaceError(f"MTU {mtu!r} is not an integer in {_MIN_MTU}..{_MAX_MTU}")
    return mtu


def _check_cidrs(cidrs: Iterable[str]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    if isinstance(cidrs, (str, bytes)):
        raise InterfaceError("cidrs must be a list of addresses with prefix length, not a string")
    result = []
    for cidr in cidrs:
        if not isinstance(cidr, str) or "/" not in cidr:
            raise InterfaceError(f"address {cidr!r} is not of the form ADDRESS/PREFIXLEN")
        try:
            iface = ipaddress.ip_interface(cidr)
        except ValueError as exc:
            raise InterfaceError(f"address {cidr!r} is invalid: {exc}") from None
        if iface not in result:
            result.append(iface)
    return result


# -- pyroute2 helpers ----------------------------------------------------------------


def _get_link(ipr: IPRoute, ifname: str) -> Any | None:
    try:
        return ipr.link("get", ifname=ifname)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def _kind(link: Any) -> str | None:
    return link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")


def _is_up(link: Any) -> bool:
    return bool(link["flags"] & _IFF_UP)


def _delete_link(ipr: IPRoute, index: int) -> bool:
    """Delete a link; False if it was already gone."""
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return False
        raise
    return True


def _namespace_exists(namespace: str) -> bool:
    return namespace in netns.listnetns()


def _peer_nsid(ipr: IPRoute, fd: int) -> int | None:
    """The id under which the caller's netns knows the netns behind fd (None if none)."""
    info = ipr.get_netnsid(fd=fd)
    nsid = info.get("nsid") if info else None
    return nsid if isinstance(nsid, int) and nsid >= 0 else None


def _address_of(msg: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if msg["family"] == socket.AF_INET:
        addr = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
    else:
        addr = msg.get("IFA_ADDRESS")
    return ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")


class OvirtInterfaceDriver:
    """Plugs the DHCP agent's interfaces into oVirt bridges (one namespace per network)."""

    def __init__(
        self,
        mapping_path: str,
        namespace_prefix: str = DEFAULT_NAMESPACE_PREFIX,
        netconf_dir: str | None = None,
    ):
        if not isinstance(namespace_prefix, str) or not _PREFIX.fullmatch(namespace_prefix):
            raise InterfaceError(
                f"namespace prefix {namespace_prefix!r} must be 1-64 characters of "
                "A-Z a-z 0-9 _ . -"
            )
        self.mapping_path = os.fspath(mapping_path)
        self.namespace_prefix = namespace_prefix
        self.netconf_dir = netconf_dir or None  # VDSM's running network configuration

    # -- names -----------------------------------------------------------------------

    def namespace_name(self, network_id: str) -> str:
        """The DHCP namespace of a network: the prefix followed by the network id."""
        return self.namespace_prefix + _check_network_id(network_id)

    @staticmethod
    def device_names(network_id: str) -> tuple[str, str]:
        """(host-side veth name, namespace-side veth name) of a network, 14 chars each."""
        digits = _check_network_id(network_id).replace("-", "")[:_ID_CHARS]
        return HOST_DEVICE_PREFIX + digits, NS_DEVICE_PREFIX + digits

    def _network_of_namespace(self, namespace: str) -> str | None:
        """The network id of one of our namespaces, None if the name is not ours."""
        if not namespace.startswith(self.namespace_prefix):
            return None
        network_id = namespace[len(self.namespace_prefix) :]
        return network_id if is_canonical_uuid(network_id) else None

    # -- decisions -------------------------------------------------------------------

    def serves(self, network_id: str, vdsm_name: str) -> bool:
        """True if this host serves the network: the mapping lists network_id under
        vdsm_name, a bridge named vdsm_name exists in the caller's netns, and, where
        VDSM runs, VDSM's running configuration has vdsm_name as a bridged network.

        The mapping file is re-read on every call; an invalid file raises MappingError.
        """
        if not is_canonical_uuid(network_id) or not is_vdsm_name(vdsm_name):
            return False
        if read_mapping(self.mapping_path).get(network_id) != vdsm_name:
            return False
        known = vdsm_networks(self.netconf_dir) if self.netconf_dir else None
        if known is not None and vdsm_name not in known:
            return False
        with _iproute() as ipr:
            link = _get_link(ipr, vdsm_name)
        return link is not None and _kind(link) == "bridge"

    def plugged_networks(self) -> set[str]:
        """Ids of the networks that have a namespace with our prefix."""
        found = set()
        for name in netns.listnetns():
            network_id = self._network_of_namespace(name)
            if network_id is not None:
                found.add(network_id)
        return found

    # -- plug ------------------------------------------------------------------------

    def _ensure_namespace(self, namespace: str, network_id: str) -> None:
        if _namespace_exists(namespace):
            return
        try:
            netns.create(namespace)
        except FileExistsError:
            return  # created concurrently
        LOG.info("Created namespace %s for network %s", namespace, network_id)

    @staticmethod
    def _ipv6_settings(namespace: str, devices: Iterable[str]) -> None:
        """IPV6_SETTINGS on devices of the namespace ("default": for devices to come).

        The DHCP interface's link-local address must be usable at once: dnsmasq sends
        its router advertisements from it, and falls back to a global source address,
        which clients drop (RFC 4861), while it is tentative.
        """
        with _entered(namespace):
            for dev in devices:
                for key, value in IPV6_SETTINGS.items():
                    try:
                        with open(f"/proc/sys/net/ipv6/conf/{dev}/{key}", "w") as f:
                            f.write(value)
                    except FileNotFoundError:
                        return  # IPv6 disabled in this kernel: nothing to set

    def plug_new(self, network_id: str, mac_address: str, bridge: str, mtu: int) -> None:
        """Create (or repair) the network's namespace and veth pair.

        The namespace end gets mac_address and mtu and is brought up (with ``lo``); the
        host end gets mtu, is enslaved to bridge (which must exist in the caller's
        netns) and brought up. Nothing is changed when all that is already true.
        """
        network_id = _check_network_id(network_id)
        mac = _check_mac(mac_address)
        bridge = _check_bridge(bridge)
        mtu = _check_mtu(mtu)
        namespace = self.namespace_name(network_id)
        host_dev, ns_dev = self.device_names(network_id)

        with _iproute() as ipr:
            br = _get_link(ipr, bridge)
            if br is None or _kind(br) != "bridge":
                raise InterfaceError(
                    f"network {network_id}: no bridge {bridge!r} in this network namespace"
                )
            self._ensure_namespace(namespace, network_id)
            self._ipv6_settings(namespace, ["default"])
            with _iproute(namespace) as nsr, _netns_fd(namespace) as nsfd:
                host, peer = self._ensure_pair(
                    ipr, nsr, nsfd, network_id, host_dev, ns_dev, mac, mtu
                )
                self._ipv6_settings(namespace, [ns_dev])
                self._configure_ns_end(nsr, peer, network_id, mac, mtu)
                self._configure_host_end(ipr, host, network_id, br, mtu)

    def _ensure_pair(
        self,
        ipr: IPRoute,
        nsr: IPRoute,
        nsfd: int,
        network_id: str,
        host_dev: str,
        ns_dev: str,
        mac: str,
        mtu: int,
    ) -> tuple[Any, Any]:
        host = _get_link(ipr, host_dev)
        peer = _get_link(nsr, ns_dev)
        if host is not None:
            if (
                _kind(host) == "veth"
                and peer is not None
                and host.get("IFLA_LINK") == peer["index"]
                and host.get("IFLA_LINK_NETNSID") is not None
                and host.get("IFLA_LINK_NETNSID") == _peer_nsid(ipr, nsfd)
            ):
                return host, peer
            LOG.warning(
                "Network %s: %s is not a veth paired with %s in %s, recreating it",
                network_id,
                host_dev,
                ns_dev,
                self.namespace_name(network_id),
            )
            _delete_link(ipr, host["index"])
            peer = _get_link(nsr, ns_dev)  # gone with its peer, if it was one
        if peer is not None:
            LOG.warning(
                "Network %s: removing unpaired %s from %s",
                network_id,
                ns_dev,
                self.namespace_name(network_id),
            )
            _delete_link(nsr, peer["index"])
        ipr.link(
            "add",
            ifname=host_dev,
            kind="veth",
            mtu=mtu,
            peer={"ifname": ns_dev, "net_ns_fd": nsfd, "address": mac, "mtu": mtu},
        )
        LOG.info("Created veth %s/%s for network %s", host_dev, ns_dev, network_id)
        host = _get_link(ipr, host_dev)
        peer = _get_link(nsr, ns_dev)
        if host is None or peer is None:
            raise InterfaceError(f"network {network_id}: veth {host_dev}/{ns_dev} vanished")
        return host, peer

    def _configure_ns_end(
        self, nsr: IPRoute, peer: Any, network_id: str, mac: str, mtu: int
    ) -> None:
        changes: dict[str, Any] = {}
        if peer.get("IFLA_ADDRESS") != mac:
            changes["address"] = mac
        if peer.get("IFLA_MTU") != mtu:
            changes["mtu"] = mtu
        if changes:
            nsr.link("set", index=peer["index"], **changes)
            LOG.info(
                "Network %s: set %s on %s",
                network_id,
                ", ".join(f"{k} {v}" for k, v in changes.items()),
                peer.get("IFLA_IFNAME"),
            )
        if not _is_up(peer):
            nsr.link("set", index=peer["index"], state="up")
        lo = _get_link(nsr, "lo")
        if lo is not None and not _is_up(lo):
            nsr.link("set", index=lo["index"], state="up")

    def _configure_host_end(
        self, ipr: IPRoute, host: Any, network_id: str, bridge: Any, mtu: int
    ) -> None:
        if host.get("IFLA_MTU") != mtu:
            ipr.link("set", index=host["index"], mtu=mtu)
            LOG.info("Network %s: set mtu %s on %s", network_id, mtu, host.get("IFLA_IFNAME"))
        if host.get("IFLA_MASTER") != bridge["index"]:
            ipr.link("set", index=host["index"], master=bridge["index"])
            LOG.info(
                "Network %s: enslaved %s to bridge %s",
                network_id,
                host.get("IFLA_IFNAME"),
                bridge.get("IFLA_IFNAME"),
            )
        if not _is_up(host):
            ipr.link("set", index=host["index"], state="up")

    # -- addresses -------------------------------------------------------------------

    def init_l3(self, network_id: str, cidrs: list[str]) -> None:
        """Make cidrs ("10.0.0.2/24", "fd00::2/64", ...) exactly the addresses of the
        namespace end: add the missing ones, remove the others.

        IPv6 link-local addresses the kernel configured itself are kept unless listed.
        IPv6 addresses are added without duplicate address detection (usable at once);
        IPv4 addresses get the subnet broadcast address.
        """
        network_id = _check_network_id(network_id)
        wanted = _check_cidrs(cidrs)
        namespace = self.namespace_name(network_id)
        _, ns_dev = self.device_names(network_id)
        if not _namespace_exists(namespace):
            raise InterfaceError(f"network {network_id}: not plugged (no namespace {namespace})")
        with _iproute(namespace) as nsr:
            dev = _get_link(nsr, ns_dev)
            if dev is None:
                raise InterfaceError(f"network {network_id}: not plugged (no {ns_dev})")
            index = dev["index"]
            for iface in self._addresses(nsr, index):
                if iface in wanted or (iface.version == 6 and iface.ip.is_link_local):
                    continue
                with contextlib.suppress(NetlinkError):  # gone with a deleted primary
                    nsr.addr(
                        "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
                    )
                LOG.info("Network %s: removed address %s from %s", network_id, iface, ns_dev)
            # Deleting a primary IPv4 address also drops its secondaries: look again.
            present = set(self._addresses(nsr, index))
            for iface in wanted:
                if iface in present:
                    continue
                kwargs: dict[str, Any] = {}
                if iface.version == 4:
                    if iface.network.prefixlen < 31:
                        kwargs["broadcast"] = str(iface.network.broadcast_address)
                else:
                    kwargs["flags"] = _IFA_F_NODAD
                nsr.addr(
                    "add",
                    index=index,
                    address=str(iface.ip),
                    prefixlen=iface.network.prefixlen,
                    **kwargs,
                )
                LOG.info("Network %s: added address %s to %s", network_id, iface, ns_dev)

    def set_gateways(self, network_id: str, gateways: list[str]) -> None:
        """Make these (one IPv4, one IPv6 at most) the namespace's default routes, and
        remove any other: a DNS service forwards to resolvers that may be off the
        network. Without the DNS service the list is empty (the namespace routes
        nothing)."""
        network_id = _check_network_id(network_id)
        wanted: dict[int, str] = {}
        for gateway in gateways:
            address = ipaddress.ip_address(gateway)
            wanted.setdefault(address.version, str(address))
        namespace = self.namespace_name(network_id)
        _, ns_dev = self.device_names(network_id)
        with _iproute(namespace) as nsr:
            dev = _get_link(nsr, ns_dev)
            if dev is None:
                raise InterfaceError(f"network {network_id}: not plugged (no {ns_dev})")
            for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
                held = [
                    r.get_attr("RTA_GATEWAY")
                    for r in nsr.route("dump", family=family, table=254)
                    if r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY")
                ]
                for gateway in held:
                    if gateway != wanted.get(version):
                        nsr.route("del", dst="default", gateway=gateway, family=family)
                        LOG.info("Network %s: removed default route via %s", network_id, gateway)
                if version in wanted and wanted[version] not in held:
                    nsr.route(
                        "add",
                        dst="default",
                        gateway=wanted[version],
                        oif=dev["index"],
                        family=family,
                    )
                    LOG.info(
                        "Network %s: default route via %s for the DNS service",
                        network_id,
                        wanted[version],
                    )

    @staticmethod
    def _addresses(nsr: IPRoute, index: int) -> list[Any]:
        return [_address_of(m) for m in nsr.addr("dump", index=index) if m["index"] == index]

    # -- unplug and cleanup ----------------------------------------------------------

    def unplug(self, network_id: str) -> None:
        """Delete the network's veth pair and namespace; a no-op for what is gone.

        Processes still running in the namespace (dnsmasq) keep the kernel namespace
        alive, isolated, after its name is removed: stop them first.
        """
        network_id = _check_network_id(network_id)
        namespace = self.namespace_name(network_id)
        host_dev, _ = self.device_names(network_id)
        with _iproute() as ipr:
            host = _get_link(ipr, host_dev)
            if host is not None and _delete_link(ipr, host["index"]):
                LOG.info("Deleted veth %s of network %s", host_dev, network_id)
        self._remove_namespace(namespace, network_id)

    @staticmethod
    def _remove_namespace(namespace: str, network_id: str | None) -> None:
        if not _namespace_exists(namespace):
            return
        try:
            netns.remove(namespace)
        except FileNotFoundError:
            return
        LOG.info("Deleted namespace %s of network %s", namespace, network_id)

    def cleanup_stale(self, keep_network_ids: set[str]) -> None:
        """Remove what earlier runs left behind, keeping the networks in keep_network_ids.

        - namespaces with our prefix (and a network id after it) whose network is not
          kept, with their veth pair;
        - host-side veths named ``ovh<hex>`` in the caller's netns whose peer is in no
          named namespace (orphaned) or still in the caller's netns (a plug that never
          finished), or in one of our namespaces that is not the right one for it.
          Veths whose peer is in a namespace with another name are left alone (another
          driver instance's).
        """
        keep = {n for n in keep_network_ids if is_canonical_uuid(n)}
        for stale_id in sorted(self.plugged_networks() - keep):
            self.unplug(stale_id)
            LOG.info("Removed stale DHCP interface of network %s", stale_id)

        with _iproute() as ipr:
            candidates = [
                link
                for link in ipr.link("dump")
                if _HOST_DEVICE.fullmatch(link.get("IFLA_IFNAME") or "") and _kind(link) == "veth"
            ]
            if not candidates:
                return
            # Map the caller's netns ids of named namespaces to their names (after the
            # link dump, which makes the kernel assign ids to the peers' namespaces).
            names_by_nsid: dict[int, str] = {}
            for name in netns.listnetns():
                try:
                    with _netns_fd(name) as fd:
                        nsid = _peer_nsid(ipr, fd)
                except (OSError, NetlinkError):
                    continue
                if nsid is not None:
                    names_by_nsid[nsid] = name
            for link in candidates:
                ifname = link.get("IFLA_IFNAME")
                nsid = link.get("IFLA_LINK_NETNSID")
                if nsid is None:
                    reason, network_id = "its peer is in this namespace", None
                elif nsid not in names_by_nsid:
                    reason, network_id = "its peer is in no named namespace", None
                else:
                    network_id = self._network_of_namespace(names_by_nsid[nsid])
                    if names_by_nsid[nsid].startswith(self.namespace_prefix) and (
                        network_id is None
                        or network_id not in keep
                        or self.device_names(network_id)[0] != ifname
                    ):
                        reason = f"its peer is in {names_by_nsid[nsid]}"
                    else:
                        continue  # ours and kept, or another driver instance's
                if _delete_link(ipr, link["index"]):
                    LOG.info(
                        "Removed stale veth %s of network %s: %s",
                        ifname,
                        network_id or "unknown",
                        reason,
                    )
