"""One network served on this host: its dnsmasq, its hostsdir, and the proof that
dnsmasq has loaded each port's entry (DESIGN.md, dnsmasq facts and Invariants).

A port has up to three files, each read by dnsmasq through inotify: its record in
hosts.d (always), its options in opts.d (once it has a name or extra_dhcp_opts) and
its DNS records in dns.d (with the network's DNS service, once it has a name).
Every change is one batch: write each changed file (``.name``, then rename; options
and names before the record that makes them apply), tombstone deleted ports
(``MAC,infinite``, then ``dhcp_release``), and watch dnsmasq's log. A file is
confirmed when dnsmasq logged ``read PATH`` for it and no ``duplicate dhcp-host``
rejection of it before its next ``read`` line; a sentinel file written after the
batch guarantees such a later line. A port is acknowledged when all of its changed
files are confirmed.

dnsmasq never forgets a record it read from the hostsdir until SIGHUP. So the
records a file held before it changed stay loaded ("stale"); a new record whose
IP a stale record holds for another MAC would be rejected. Such a batch first
drops the tombstones and then reloads (SIGHUP), once, however many ports need it.
Options are not forgotten either: a batch that takes an option away from a port
reloads after its writes. dnsmasq before 2.91 aborts on SIGHUP once it has answered
a tagged record (every port's record sets its tag), so there a reload is a restart.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import time
from pathlib import Path

from dhcp_driver import dnsmasq_config as cfgmod
from dhcp_driver.dnsmasq_config import Paths
from dhcp_driver.dnsmasq_log import LogFollower, parse
from dhcp_driver.dnsmasq_process import SIGHUP_SAFE_WITH_TAGS, DnsmasqProcess, version
from dhcp_driver.lease_log import LeaseTracker
from ipam.bus.contracts import DHCP_OWNER, AckedPort, LeaseFact, NetworkState, PortState

LOG = logging.getLogger(__name__)
HOSTS, OPTS, DNS = "hosts.d", "opts.d", "dns.d"
#: Written after a batch in hosts.d: dnsmasq's read of it is a later line.
SENTINEL = f"{HOSTS}/sentinel"
#: The order a batch writes in: what a record makes apply is loaded before it.
_WRITE_ORDER = {OPTS: 0, DNS: 1, HOSTS: 2}


def _key(kind: str, port_id: str) -> str:
    """A file's name relative to the network's directory, as the batch tracks it."""
    return f"{kind}/{port_id}"


def _port_of(key: str) -> str:
    return key.partition("/")[2]


LOG_ROTATE_BYTES = 16 * 1024 * 1024


def _write_atomic(path: Path, content: str) -> None:
    """path holds content or what it held before, never a part (a full or read-only
    state directory raises OSError and leaves no temporary file behind)."""
    tmp = path.with_name("." + path.name)
    try:
        with open(tmp, "w") as f:
            f.write(content)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class ServedNetwork:
    def __init__(
        self,
        network_id: str,
        base_dir: Path,
        namespace: str,
        interface: str,
        lease_time: int = 86400,
        confirm_timeout: float = 10.0,
        dnsmasq_binary: str = "dnsmasq",
    ) -> None:
        self.network_id, self.namespace, self.interface = network_id, namespace, interface
        self.lease_time, self.confirm_timeout = lease_time, confirm_timeout
        self.paths = Paths(base_dir)
        for d in (self.paths.base, self.paths.hostsdir, self.paths.optsdir, self.paths.dnsdir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        self.binary = dnsmasq_binary
        self.process = DnsmasqProcess(network_id, self.paths, namespace, dnsmasq_binary)
        self.leases = LeaseTracker(lease_time, self.paths.leases)
        self.log = LogFollower(str(self.paths.log), on_line=self.leases.feed)
        self.state: NetworkState | None = None
        self.kinds: dict[str, str] = {}  # DHCP-enabled subnet id -> cfgmod service
        self.files: dict[str, str] = self._read_dirs()  # what is on disk, by _key
        self.stale: dict[str, str] = {}  # ip -> mac of loaded records no longer current
        self.stale_opts = False  # an option no file holds any more is still loaded
        self.ports: dict[str, PortState] = {}  # desired: the network's (non-DHCP) ports
        self.deleted: dict[str, int] = {}  # port id -> revision at deletion
        self.confirmed: dict[str, str] = {}  # _key -> content dnsmasq is known to hold

    # -- the files ------------------------------------------------------------------
    def _read_dirs(self) -> dict[str, str]:
        out = {}
        for kind in (HOSTS, OPTS, DNS):
            for entry in os.scandir(self.paths.base / kind):
                key = _key(kind, entry.name)
                if entry.name.startswith(".") or key == SENTINEL:
                    continue
                out[key] = Path(entry.path).read_text()
        return out

    def _is_tombstone(self, port_id: str) -> bool:
        """A deleted port's record (a live port's may look the same: see host_entry)."""
        if port_id in self.ports:
            return False
        records = cfgmod.parse_entry(self.files.get(_key(HOSTS, port_id), ""))
        return bool(records) and not any(cfgmod.holds_address(v) for _, v in records)

    def _entries(self, port: PortState) -> dict[str, str]:
        """The files a port needs: its record; its options once it has a name or
        options (or had: the file then takes them back); its DNS records likewise,
        with the DNS service."""
        out = {_key(HOSTS, port.id): cfgmod.host_entry(port, self.kinds)}
        opts = _key(OPTS, port.id)
        if port.dns_name or port.extra_dhcp_opts or opts in self.files:
            out[opts] = cfgmod.opts_entry(port)
        dns, state = _key(DNS, port.id), self.state
        if state is not None and state.network.dns_service and (port.dns_name or dns in self.files):
            out[dns] = cfgmod.dns_entry(port, state.network.dns_domain)
        return out

    def _current(self, key: str, content: str) -> bool:
        return self.files.get(key) == content and self.confirmed.get(key) == content

    # -- state from the engine ------------------------------------------------------
    def apply_state(self, state: NetworkState) -> list[AckedPort]:
        """Serve exactly this state (a sync); returns the ports now confirmed.

        The first sync after the agent started also acknowledges what an adopted
        dnsmasq already holds, as its own log shows it.
        """
        first = self.state is None
        self.state = state
        self.kinds = cfgmod.services(state)
        conf = cfgmod.render(state, self.paths, self.interface, self.lease_time)
        self.ports = {p.id: p for p in state.ports if p.device_owner != DHCP_OWNER}
        for port_id in self.ports:
            self.deleted.pop(port_id, None)
        lease = state.network.dhcp_lease_time
        self.leases.lease_time = self.lease_time if lease is None else lease
        if not self.process.alive() and self.process.adopt():
            self.confirmed = self._verdicts_from_log()
            self.leases.rebuild(self.paths.leases)
        if not self.paths.conf.exists() or self.paths.conf.read_text() != conf:
            _write_atomic(self.paths.conf, conf)
            if self.process.alive():
                LOG.info("Network %s: configuration changed; restarting dnsmasq", self.network_id)
                self.process.stop()
        wanted: dict[str, str] = {}
        for port in self.ports.values():
            wanted.update(self._entries(port))
        writes = {k: v for k, v in wanted.items() if not self._current(k, v)}
        gone = [
            _port_of(k)
            for k in self.files
            if k.startswith(HOSTS)
            and _port_of(k) not in self.ports
            and not self._is_tombstone(_port_of(k))
        ]
        if not self.process.alive():
            # A fresh dnsmasq reads every directory: write first, then start.
            return self._start(writes, gone)
        changed = {_port_of(k) for k in writes}
        held = [
            AckedPort(id=k, revision_number=p.revision_number)
            for k, p in self.ports.items()
            if first and k not in changed
        ]
        return held + self._commit(writes, gone)

    def _verdicts_from_log(self) -> dict[str, str]:
        """Files an adopted dnsmasq read without rejecting them, from its log."""
        prefix = str(self.paths.base) + "/"
        last: dict[str, str] = {}
        try:
            with open(self.paths.log, errors="replace") as f:
                for line in f:
                    event = parse(line.rstrip("\n"))
                    if event is not None and event.path.startswith(prefix):
                        last[event.path[len(prefix) :]] = event.kind
        except FileNotFoundError:
            pass
        self.log.skip_to_end()
        return {k: v for k, v in self.files.items() if last.get(k) == "read"}

    def update_ports(self, ports: list[PortState]) -> list[AckedPort]:
        """Created or changed ports, in event order, as one batch."""
        held: list[AckedPort] = []
        writes: dict[str, str] = {}
        dhcp_ports = []
        for port in ports:
            if port.network_id != self.network_id:
                continue
            if port.device_owner == DHCP_OWNER:
                dhcp_ports.append(port)
                continue
            known = self.ports.get(port.id)
            if (known and port.revision_number < known.revision_number) or (
                port.revision_number <= self.deleted.get(port.id, -1)
            ):
                LOG.info(
                    "Network %s: ignoring stale port %s revision %d (have %s)",
                    self.network_id,
                    port.id,
                    port.revision_number,
                    known.revision_number if known else "a deletion",
                )
                continue
            self.ports[port.id] = port
            entries = self._entries(port)
            for key in [k for k in writes if _port_of(k) == port.id]:
                del writes[key]
            changed = {k: v for k, v in entries.items() if not self._current(k, v)}
            if changed:
                writes.update(changed)
            else:
                held.append(AckedPort(id=port.id, revision_number=port.revision_number))
        acks = self._commit(writes, []) if writes else []
        if dhcp_ports:
            acks += self._dhcp_ports_changed(dhcp_ports)
        acked = {a.id for a in acks}
        return [a for a in held if a.id not in acked] + acks

    def _dhcp_ports_changed(self, dhcp_ports: list[PortState]) -> list[AckedPort]:
        """With the DNS service, VMs are told every DHCP port's address: a DHCP port
        that comes or changes changes the configuration (a restart)."""
        if self.state is None or not self.state.network.dns_service:
            return []
        by_id = {p.id: p for p in self.state.ports}
        for port in dhcp_ports:
            held = by_id.get(port.id)
            if held is None or held.revision_number <= port.revision_number:
                by_id[port.id] = port
        for port_id, port in self.ports.items():  # what update_ports already took
            by_id[port_id] = port
        state = self.state.model_copy(update={"ports": list(by_id.values())})
        return self.apply_state(state)

    def delete_port(self, port: PortState) -> None:
        known = self.ports.get(port.id)
        if known and port.revision_number < known.revision_number:
            LOG.info(
                "Network %s: ignoring stale deletion of port %s revision %d (have %d)",
                self.network_id,
                port.id,
                port.revision_number,
                known.revision_number,
            )
            return
        self.ports.pop(port.id, None)
        self.deleted[port.id] = port.revision_number
        if _key(HOSTS, port.id) in self.files and not self._is_tombstone(port.id):
            self._commit({}, [port.id])

    # -- batches -------------------------------------------------------------------
    def _commit(self, writes: dict[str, str], gone: list[str]) -> list[AckedPort]:
        reload = False
        for key, content in writes.items():
            reload |= self._note_change(key, content)
        if reload:
            # New entries need IPs that stale records hold: drop those first (SIGHUP
            # re-reads the hostsdir as it is now), then write. An entry written
            # before the SIGHUP could be read twice, by the reload and for its
            # inotify event, and the second read rejects it as a duplicate.
            self._reload()
            for key, content in writes.items():
                self._note_change(key, content)
        releases = []
        for port_id in gone:
            self._forget_extras(port_id)
            hosts = _key(HOSTS, port_id)
            records = cfgmod.parse_entry(self.files.get(hosts, ""))
            mac = records[0][0] if records else None
            if mac is None:
                (self.paths.base / hosts).unlink(missing_ok=True)
                self.files.pop(hosts, None)
                continue
            self._note_change(hosts, cfgmod.tombstone(mac))
            writes[hosts] = cfgmod.tombstone(mac)
            releases += [(ip, m) for m, ip in records if cfgmod.holds_address(ip)]
        self.log.skip_to_end()
        logged_before = self._log_size()
        for key in sorted(writes, key=lambda k: _WRITE_ORDER[k.partition("/")[0]]):
            _write_atomic(self.paths.base / key, writes[key])
            self.files[key] = writes[key]
            self.confirmed.pop(key, None)
        for value, mac in releases:
            ipv6 = cfgmod.ipv6_of(value)
            if ipv6 is None:
                self.process.release(self.interface, value, mac)
            else:
                self.process.release6(self.interface, ipv6)
        if gone:
            LOG.info("Network %s: %d port(s) tombstoned and released", self.network_id, len(gone))
        pending = {k for k in writes if _port_of(k) not in gone}
        if not pending:
            return []
        verdict = self._confirm(pending)
        if all(ok is None for ok in verdict.values()) and self._log_dead(logged_before):
            # dnsmasq wrote nothing to its log since the writes: after a failed write
            # (a full disk) it gives up its log file for good (log.c), and no verdict
            # could ever come. A restart opens the log again and reads every file.
            LOG.warning(
                "Network %s: dnsmasq pid=%s logged nothing for %.1fs (its log failed?); "
                "restarting it",
                self.network_id,
                self.process.pid,
                self.confirm_timeout,
            )
            self.process.stop()
            return self._start({}, [])
        rejected = {k for k, ok in verdict.items() if ok is False}
        if rejected:
            # A stale record we did not know of (from before an agent restart), or an
            # IP passed between two ports of this batch. dnsmasq has read every file
            # of the batch by now: the reload's re-read is the only one.
            LOG.info(
                "Network %s: dnsmasq rejected %d entr(y/ies) held by stale records; reloading",
                self.network_id,
                len(rejected),
            )
            self._reload()
            verdict.update(self._confirm(rejected))
        elif self.stale_opts:
            # The batch took options away: they go with a reload, after the writes.
            LOG.info("Network %s: options were removed; reloading", self.network_id)
            self._reload()
        return self._acks(verdict)

    def _forget_extras(self, port_id: str) -> None:
        """A deleted port's options and names: its DNS records go at once (dnsmasq
        drops a removed dns.d file's records); its options match no record any more."""
        for kind in (OPTS, DNS):
            key = _key(kind, port_id)
            if self.files.pop(key, None) is not None:
                (self.paths.base / key).unlink(missing_ok=True)
                self.confirmed.pop(key, None)

    def _note_change(self, key: str, content: str) -> bool:
        """Track what stays loaded after this change; True if a reload must come first.

        hosts.d: IPv4 records only (dnsmasq checks no IPv6 address for duplicates,
        and the tombstone of a MAC shadows its IPv6 records as it does its IPv4
        ones); a record rewritten with its own IPv4 address would be rejected for it.
        opts.d: an option that a file no longer has is still sent until a reload.
        """
        old = self.files.get(key, "")
        if key.startswith(OPTS):
            self.stale_opts |= bool(cfgmod.opts_keys(old) - cfgmod.opts_keys(content))
            return False
        if not key.startswith(HOSTS) or old == content:
            return False
        new = cfgmod.parse_entry(content)
        need = False
        for mac, ip in cfgmod.parse_entry(old):
            if cfgmod.holds_address(ip) and cfgmod.ipv6_of(ip) is None:
                if (mac, ip) in new:
                    need |= self.confirmed.get(key) == old  # loaded: its address is taken
                else:
                    self.stale[ip] = mac
        for mac, ip in new:
            holder = self.stale.get(ip)
            if holder == mac:
                del self.stale[ip]
            elif holder is not None:
                need = True
        return need

    def _reload(self) -> None:
        for port_id in [_port_of(k) for k in self.files if k.startswith(HOSTS)]:
            if self._is_tombstone(port_id):
                os.unlink(self.paths.base / _key(HOSTS, port_id))
                del self.files[_key(HOSTS, port_id)]
        self.stale.clear()
        self.stale_opts = False
        self.log.skip_to_end()
        if not self.process.alive():
            return
        if version(self.binary) < SIGHUP_SAFE_WITH_TAGS:
            # Every record sets a tag, a replaced one (still loaded) included.
            LOG.info(
                "Network %s: restarting dnsmasq to reload (SIGHUP is unsafe before %d.%d)",
                self.network_id,
                *SIGHUP_SAFE_WITH_TAGS,
            )
            self.process.stop()
            _write_atomic(self.paths.base / SENTINEL, "")
            self.process.start()
            self._confirm({SENTINEL}, start=True)
            return
        if self.process.reload():
            # Done once dnsmasq has re-read the hostsdir, whose sentinel it reads too.
            self._confirm({SENTINEL})
            LOG.info("Network %s: reloaded dnsmasq (SIGHUP) for stale records", self.network_id)

    def _start(self, writes: dict[str, str], gone: list[str]) -> list[AckedPort]:
        """(Re)start dnsmasq from scratch: no stale records, no tombstones needed."""
        for port_id in gone:
            self._forget_extras(port_id)
            self.files.pop(_key(HOSTS, port_id), None)
            (self.paths.base / _key(HOSTS, port_id)).unlink(missing_ok=True)
        for port_id in [_port_of(k) for k in self.files if k.startswith(HOSTS)]:
            if self._is_tombstone(port_id):
                (self.paths.base / _key(HOSTS, port_id)).unlink(missing_ok=True)
                del self.files[_key(HOSTS, port_id)]
        for key in [k for k in self.files if not k.startswith(HOSTS)]:
            if _port_of(key) not in self.ports and key not in writes:
                self._forget_extras(_port_of(key))
        for key, content in writes.items():
            _write_atomic(self.paths.base / key, content)
            self.files[key] = content
        self._prune_leases()
        self.stale.clear()
        self.stale_opts = False
        self.confirmed.clear()
        self.log.skip_to_end()
        self.leases.rebuild(self.paths.leases)
        _write_atomic(self.paths.base / SENTINEL, "")
        self.process.start()
        # The sentinel too: a start with no ports still waits until dnsmasq is serving.
        # dns.d is read only with the DNS service.
        dns = self.state is not None and self.state.network.dns_service
        loaded = {k for k in self.files if dns or not k.startswith(DNS)}
        return self._acks(self._confirm({*loaded, SENTINEL}, start=True))

    def _prune_leases(self) -> None:
        """Leases of MACs (IPv4) and addresses (IPv6) that no longer have a port would
        hold them. IPv6 leases, keyed by DUID, follow the ``duid`` line."""
        try:
            lines = self.paths.leases.read_text().splitlines()
        except FileNotFoundError:
            return
        macs = {p.mac_address for p in self.ports.values()}
        addresses6 = {
            str(ipaddress.IPv6Address(f.ip_address))
            for p in self.ports.values()
            for f in p.fixed_ips
            if self.kinds.get(f.subnet_id) == cfgmod.DHCP6
        }
        kept, ipv6 = [], False
        for line in lines:
            fields = line.split()
            if fields[:1] == ["duid"]:
                ipv6 = True
                kept.append(line)
            elif len(fields) > 2 and fields[2 if ipv6 else 1] in (addresses6 if ipv6 else macs):
                kept.append(line)
        if len(kept) != len(lines):
            _write_atomic(self.paths.leases, "".join(line + "\n" for line in kept))

    def _confirm(self, pending: set[str], start: bool = False) -> dict[str, bool | None]:
        """Watch the log until each pending file is read and its verdict final.

        True: loaded; False: rejected; None: no verdict before the deadline.
        """
        prefix = str(self.paths.base) + "/"
        read_at: dict[str, int] = {}
        rejected: set[str] = set()
        sentinel_written, n = False, 0
        last_pending = -1
        deadline = time.monotonic() + self.confirm_timeout * (3 if start else 1)
        while True:
            for line in self.log.lines():
                event = parse(line)
                if event is None or not event.path.startswith(prefix):
                    continue
                n += 1
                name = event.path[len(prefix) :]
                if event.kind == "read":
                    if len(read_at) == len(pending) and n > last_pending and pending:
                        return {k: k not in rejected for k in pending}
                    if name in pending:
                        read_at[name] = n
                        rejected.discard(name)
                        if len(read_at) == len(pending):
                            last_pending = n
                elif name in pending:
                    rejected.add(name)
            if not pending:
                return {}
            if len(read_at) == len(pending) and not sentinel_written:
                _write_atomic(self.paths.base / SENTINEL, "")
                sentinel_written = True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.process.alive():
                LOG.warning(
                    "Network %s: no verdict from dnsmasq on %d of %d entr(y/ies) within %.1fs",
                    self.network_id,
                    len(pending) - len(read_at),
                    len(pending),
                    self.confirm_timeout,
                )
                return {k: (k not in rejected) if k in read_at else None for k in pending}
            self.log.wait(min(remaining, 0.5))

    def _log_size(self) -> int:
        try:
            return self.paths.log.stat().st_size
        except FileNotFoundError:
            return -1

    def _log_dead(self, size_before: int) -> bool:
        """A running dnsmasq whose log has not grown since size_before (it has not
        been rotated meanwhile: a rotation happens only between batches)."""
        return self.process.alive() and self._log_size() == size_before

    def _acks(self, verdict: dict[str, bool | None]) -> list[AckedPort]:
        """A port is acknowledged when every one of its files in the batch is loaded."""
        ok_by_port: dict[str, bool] = {}
        for key, ok in verdict.items():
            if ok:
                self.confirmed[key] = self.files.get(key, "")
            elif ok is False:
                LOG.error(
                    "Network %s: dnsmasq rejected %s of port %s even after a reload",
                    self.network_id,
                    key.partition("/")[0],
                    _port_of(key),
                )
            ok_by_port[_port_of(key)] = ok_by_port.get(_port_of(key), True) and bool(ok)
        acks = []
        for port_id, ok in ok_by_port.items():
            port = self.ports.get(port_id)
            if ok and port is not None:
                acks.append(AckedPort(id=port_id, revision_number=port.revision_number))
        return acks

    # -- supervision ------------------------------------------------------------------
    def check(self) -> list[AckedPort] | None:
        """Respawn a dead dnsmasq (with backoff); returns its acks when it restarted."""
        if self.state is None or self.process.alive():
            if self.process.alive():
                self.process.reap()
                self.process.failures = 0
                self._rotate_log()
            return None
        if time.monotonic() < self.process.next_start:
            return None
        LOG.warning(
            "Network %s: dnsmasq pid=%s died (%s); respawning",
            self.network_id,
            self.process.pid,
            self.process.exit_reason(),
        )
        self.process.backoff()
        return self._start({}, [])

    def _rotate_log(self) -> None:
        """dnsmasq logs every DHCP exchange: keep one old log, reopened by SIGUSR2.
        The follower reads the rest of the old file before it moves to the new one."""
        try:
            if self.paths.log.stat().st_size < LOG_ROTATE_BYTES:
                return
        except FileNotFoundError:
            return
        os.replace(self.paths.log, self.paths.log.with_suffix(".log.1"))
        self.process.signal(signal.SIGUSR2)
        LOG.info("Network %s: rotated the dnsmasq log", self.network_id)

    def lease_facts(self) -> tuple[list[LeaseFact], int, bool] | None:
        """What dnsmasq logged of its clients since the last call (see lease_log)."""
        self.log.lines()
        return self.leases.take()

    def ports_count(self) -> int:
        return len(self.ports)

    def stop(self) -> None:
        self.process.adopt()
        self.process.stop()
        self.log.close()
