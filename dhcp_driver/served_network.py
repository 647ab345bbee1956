"""One network served on this host: its dnsmasq, its hostsdir, and the proof that
dnsmasq has loaded each port's entry (DESIGN.md, dnsmasq facts and Invariants).

Every change is one batch: write each changed port's file (``.name``, then
rename), tombstone deleted ports (``MAC,infinite``, then ``dhcp_release``), and
watch dnsmasq's log. A file is confirmed when dnsmasq logged ``read PATH`` for it
and no ``duplicate dhcp-host`` rejection of it before its next ``read`` line; a
sentinel file written after the batch guarantees such a later line. Only
confirmed ports are acknowledged.

dnsmasq never forgets a record it read from the hostsdir until SIGHUP. So the
records a file held before it changed stay loaded ("stale"); a new record whose
IP a stale record holds for another MAC would be rejected. Such a batch first
drops the tombstones and then reloads (SIGHUP), once, however many ports need it.
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
from dhcp_driver.dnsmasq_process import DnsmasqProcess
from ipam.bus.contracts import DHCP_OWNER, AckedPort, NetworkState, PortState

LOG = logging.getLogger(__name__)
SENTINEL = "sentinel"
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
        for d in (self.paths.base, self.paths.hostsdir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        self.process = DnsmasqProcess(network_id, self.paths, namespace, dnsmasq_binary)
        self.log = LogFollower(str(self.paths.log))
        self.state: NetworkState | None = None
        self.kinds: dict[str, str] = {}  # DHCP-enabled subnet id -> cfgmod service
        self.files: dict[str, str] = self._read_hostsdir()  # what is on disk, by port id
        self.stale: dict[str, str] = {}  # ip -> mac of loaded records no longer current
        self.ports: dict[str, PortState] = {}  # desired: the network's (non-DHCP) ports
        self.deleted: dict[str, int] = {}  # port id -> revision at deletion
        self.confirmed: dict[str, str] = {}  # port id -> content dnsmasq is known to hold

    # -- the hostsdir -------------------------------------------------------------
    def _read_hostsdir(self) -> dict[str, str]:
        out = {}
        for entry in os.scandir(self.paths.hostsdir):
            if entry.name.startswith(".") or entry.name == SENTINEL:
                continue
            out[entry.name] = Path(entry.path).read_text()
        return out

    def _is_tombstone(self, port_id: str) -> bool:
        """A deleted port's file (a live port's may look the same: see host_entry)."""
        if port_id in self.ports:
            return False
        records = cfgmod.parse_entry(self.files.get(port_id, ""))
        return bool(records) and not any(cfgmod.holds_address(v) for _, v in records)

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
        if not self.process.alive() and self.process.adopt():
            self.confirmed = self._verdicts_from_log()
        if not self.paths.conf.exists() or self.paths.conf.read_text() != conf:
            _write_atomic(self.paths.conf, conf)
            if self.process.alive():
                LOG.info("Network %s: configuration changed; restarting dnsmasq", self.network_id)
                self.process.stop()
        writes = {p.id: cfgmod.host_entry(p, self.kinds) for p in self.ports.values()}
        writes = {
            k: v for k, v in writes.items() if self.files.get(k) != v or self.confirmed.get(k) != v
        }
        gone = [k for k in self.files if k not in self.ports and not self._is_tombstone(k)]
        if not self.process.alive():
            # A fresh dnsmasq reads the whole hostsdir: write first, then start.
            return self._start(writes, gone)
        held = [
            AckedPort(id=k, revision_number=p.revision_number)
            for k, p in self.ports.items()
            if first and k not in writes
        ]
        return held + self._commit(writes, gone)

    def _verdicts_from_log(self) -> dict[str, str]:
        """Files an adopted dnsmasq read without rejecting them, from its log."""
        prefix = str(self.paths.hostsdir) + "/"
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
        for port in ports:
            if port.device_owner == DHCP_OWNER or port.network_id != self.network_id:
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
            content = cfgmod.host_entry(port, self.kinds)
            if self.files.get(port.id) == content and self.confirmed.get(port.id) == content:
                writes.pop(port.id, None)
                held.append(AckedPort(id=port.id, revision_number=port.revision_number))
            else:
                writes[port.id] = content
        acks = self._commit(writes, []) if writes else []
        acked = {a.id for a in acks}
        return [a for a in held if a.id not in acked] + acks

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
        if port.id in self.files and not self._is_tombstone(port.id):
            self._commit({}, [port.id])

    # -- batches -------------------------------------------------------------------
    def _commit(self, writes: dict[str, str], gone: list[str]) -> list[AckedPort]:
        reload = False
        for port_id, content in writes.items():
            reload |= self._note_change(port_id, content)
        if reload:
            # New entries need IPs that stale records hold: drop those first (SIGHUP
            # re-reads the hostsdir as it is now), then write. An entry written
            # before the SIGHUP could be read twice, by the reload and for its
            # inotify event, and the second read rejects it as a duplicate.
            self._reload()
            for port_id, content in writes.items():
                self._note_change(port_id, content)
        releases = []
        for port_id in gone:
            records = cfgmod.parse_entry(self.files.get(port_id, ""))
            mac = records[0][0] if records else None
            if mac is None:
                os.unlink(self.paths.hostsdir / port_id)
                self.files.pop(port_id, None)
                continue
            self._note_change(port_id, cfgmod.tombstone(mac))
            writes[port_id] = cfgmod.tombstone(mac)
            releases += [(ip, m) for m, ip in records if cfgmod.holds_address(ip)]
        self.log.skip_to_end()
        for port_id, content in writes.items():
            _write_atomic(self.paths.hostsdir / port_id, content)
            self.files[port_id] = content
            self.confirmed.pop(port_id, None)
        for value, mac in releases:
            ipv6 = cfgmod.ipv6_of(value)
            if ipv6 is None:
                self.process.release(self.interface, value, mac)
            else:
                self.process.release6(self.interface, ipv6)
        if gone:
            LOG.info("Network %s: %d port(s) tombstoned and released", self.network_id, len(gone))
        pending = {k for k in writes if k not in gone}
        if not pending:
            return []
        verdict = self._confirm(pending)
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
        return self._acks(verdict)

    def _note_change(self, port_id: str, content: str) -> bool:
        """Track records that stay loaded after this change; True if a reload is needed.

        IPv4 records only: dnsmasq checks no IPv6 address for duplicates, and the
        tombstone of a MAC shadows its IPv6 records as it does its IPv4 ones.
        """
        new = cfgmod.parse_entry(content)
        for mac, ip in cfgmod.parse_entry(self.files.get(port_id, "")):
            if cfgmod.holds_address(ip) and cfgmod.ipv6_of(ip) is None and (mac, ip) not in new:
                self.stale[ip] = mac
        need = False
        for mac, ip in new:
            holder = self.stale.get(ip)
            if holder == mac:
                del self.stale[ip]
            elif holder is not None:
                need = True
        return need

    def _reload(self) -> None:
        for port_id in [k for k in self.files if self._is_tombstone(k)]:
            os.unlink(self.paths.hostsdir / port_id)
            del self.files[port_id]
        self.stale.clear()
        self.log.skip_to_end()
        if self.process.reload():
            # Done once dnsmasq has re-read the hostsdir, whose sentinel it reads too.
            self._confirm({SENTINEL})
            LOG.info("Network %s: reloaded dnsmasq (SIGHUP) for stale records", self.network_id)

    def _start(self, writes: dict[str, str], gone: list[str]) -> list[AckedPort]:
        """(Re)start dnsmasq from scratch: no stale records, no tombstones needed."""
        for port_id in gone:
            self.files.pop(port_id, None)
            (self.paths.hostsdir / port_id).unlink(missing_ok=True)
        for port_id in [k for k in self.files if self._is_tombstone(k)]:
            (self.paths.hostsdir / port_id).unlink(missing_ok=True)
            del self.files[port_id]
        for port_id, content in writes.items():
            _write_atomic(self.paths.hostsdir / port_id, content)
            self.files[port_id] = content
        self._prune_leases()
        self.stale.clear()
        self.confirmed.clear()
        self.log.skip_to_end()
        _write_atomic(self.paths.hostsdir / SENTINEL, "")
        self.process.start()
        # The sentinel too: a start with no ports still waits until dnsmasq is serving.
        return self._acks(self._confirm({*self.files, SENTINEL}, start=True))

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
        prefix = str(self.paths.hostsdir) + "/"
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
                _write_atomic(self.paths.hostsdir / SENTINEL, "")
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

    def _acks(self, verdict: dict[str, bool | None]) -> list[AckedPort]:
        acks = []
        for port_id, ok in verdict.items():
            if ok:
                self.confirmed[port_id] = self.files.get(port_id, "")
                port = self.ports.get(port_id)
                if port is not None:
                    acks.append(AckedPort(id=port_id, revision_number=port.revision_number))
            elif ok is False:
                LOG.error(
                    "Network %s: dnsmasq rejected the entry of port %s even after a reload",
                    self.network_id,
                    port_id,
                )
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

    def ports_count(self) -> int:
        return len(self.ports)

    def stop(self) -> None:
        self.process.adopt()
        self.process.stop()
        self.log.close()
