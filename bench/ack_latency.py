"""Acknowledgement latency of the real DHCP agent, against the rewrite-and-SIGHUP way.

    python -m bench.ack_latency [--samples N] [--rewrite-samples-100 N]
                                [--rewrite-samples-10000 N]
                                [--phases fs,fs6,named,rabbitmq,rewrite,cold]
                                [--cold-timeout S] [--raise-inotify-limit N]
                                [--polling-interval S] [--workdir-base DIR]
                                [--keep-logs DIR] [--profile-agent DIR [--profile-gil]]

The benchmark plays the engine on the bus (no REST engine, no store): it consumes
``ipam.bus.contracts.ENGINE_QUEUE``, answers the agent's ``sync.request`` with synthetic
networks (a /16 DHCP subnet, N ports, a DHCP port) whose VDSM names are bridges it
created, and records when each ``port.ack`` arrives. The agent is a real
``ovirt-ipam dhcp-agent`` process (own state directory, mapping file, namespace
prefix and host name), plugging veths into those bridges and running real dnsmasq.

What is timed (all clocks are time.monotonic in the benchmark process):

- ``ack_p50/p99_ms_<N>``: for a network already holding N acknowledged ports, one
  ``port.update`` of a NEW port (fresh id, MAC, IP) at a time, from just before the
  benchmark publishes it on the agent's queue to the moment the benchmark's engine
  consumer handles the ``port.ack`` naming that port (after a warm-up). Each event
  follows the previous ack after a random pause (0-30 ms), so that events do not
  phase-lock with the periodic polling of the filesystem transport. The agent
  acknowledges only after dnsmasq logged that it read the port's hostsdir file and a
  later file (its sentinel), so this is "event published" to "engine knows dnsmasq
  holds the entry". Bus: the embedded filesystem:// transport in a temp directory,
  both ends polling at the agent's default ``[bus] polling_interval``. The
  ``_rabbitmq`` figures are the same at 10,000 ports on RabbitMQ (a throw-away vhost,
  so the shared engine queue of other users of the broker is never touched).
- ``ack_p50/p99_ms_10000_v6``: the same at 10,000 dual-stack ports (a /16 and a
  /64 DHCPv6 subnet, each port an address of each: two host lines per file), and
  ``ack_p99_v6_over_v4_10000`` its ratio to the IPv4-only figure of the same run.
- ``ack_p50/p99_ms_10000_named``: the same at 10,000 named ports (a domain and the
  DNS service on the network; each port a dns_name and a boot file: its opts.d,
  dns.d and hostsdir files, all three confirmed before the ack), and
  ``ack_p99_named_over_plain_10000`` its ratio to the plain figure of the same run.
- ``rewrite_p50_ms_<N>``: a plain dnsmasq (own namespace, veth to a client
  namespace, ``--dhcp-hostsfile`` holding N entries, static range). Per sample: from
  the start of rewriting the whole file with one more entry (write a temp file,
  rename it over the old one), then SIGHUP, until dnsmasq *answers* for the new MAC:
  once dnsmasq logged ``read FILE`` (it logs that after parsing the file, inside the
  reload), a DHCPDISCOVER for the new MAC is sent from the client namespace and the
  clock stops when its DHCPOFFER arrives. dnsmasq is single-threaded, so the offer
  cannot come before the whole reload (parsing and what follows it) is done; the
  time to the ``read`` line alone is shown in the progress lines.
- ``cold_start_s_200x50``: 200 bridges, a mapping listing 200 networks of 50 ports
  each; from just before the agent process is spawned until acknowledgements of all
  10,000 ports have arrived (each network's dnsmasq started and confirmed to hold
  its ports).
  Every dnsmasq holds one inotify instance (for ``--dhcp-hostsdir``), and
  ``fs.inotify.max_user_instances`` is 128 by default: 200 dnsmasq cannot all start
  then. The benchmark does not change the sysctl unless asked
  (``--raise-inotify-limit N``, restored at the end); without it the cold start
  reports ``nan`` after ``--cold-timeout`` and says how far it got and why.
- ``agent_rss_mb``: resident set size of that agent process (not its dnsmasq
  children) right after the cold start, in MiB.
- ``rewrite_p50_over_ack_p99_10000[_rabbitmq]``: rewrite_p50_ms_10000 divided by
  the ack p99 at 10,000 ports (the "at least 10x faster" target).

The temporary directory (agent state paths, filesystem bus) is made under
``--workdir-base`` (default /var/tmp, a disk directory like the agent's real state
path; on some machines file creation under /tmp is much slower).

Everything created (agent and dnsmasq processes, ended by pid; namespaces and veths
of the run's prefix; bridges; the RabbitMQ vhost; temp directories) is removed at the
end, also on failure. Figures come last, one per line: ``metric: value unit``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench._agent_harness import (
    POLLING_INTERVAL,
    BenchAgent,
    Bridges,
    FakeEngine,
    HostsfileDnsmasq,
    RabbitVhost,
    SyntheticNetwork,
    inotify_instances,
    inotify_limit,
    progress,
    remove_tree,
    set_inotify_limit,
    tag,
)

PHASES = ("fs", "fs6", "named", "rabbitmq", "rewrite", "cold")
SIZES = (100, 10_000)
WARMUP = 20
GAP_MAX = 0.03  # s, random pause before each sample's event
COLD_NETWORKS, COLD_PORTS = 200, 50


def pct(values: list[float], p: int) -> float:
    """The p-th percentile (inclusive method, as numpy's default 'linear')."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tag = tag()
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f"ovirt-ipam-bench-{self.tag}-", dir=args.workdir_base)
        )
        self.bridges = Bridges()
        self.agents: list[BenchAgent] = []
        self.engines: list[FakeEngine] = []
        self.vhost: RabbitVhost | None = None
        self.rewrite: HostsfileDnsmasq | None = None
        self.figures: list[tuple[str, float, str]] = []
        self.inotify_restore: int | None = None

    def figure(self, name: str, value: float, unit: str) -> None:
        self.figures.append((name, value, unit))

    # -- helpers -------------------------------------------------------------------------
    def bridge(self, n: int) -> str:
        return self.bridges.add(f"bk{self.tag[:5]}{n:03d}")

    def agent(self, name: str, url: str) -> BenchAgent:
        host = f"bench-{self.tag}-{name}"
        agent = BenchAgent(
            self.tmp / name, url, host, f"bk-{self.tag}-{name}-", self.args.polling_interval
        )
        self.agents.append(agent)
        return agent

    def engine(self, url: str) -> FakeEngine:
        engine = FakeEngine(url, self.args.polling_interval)
        self.engines.append(engine)
        return engine

    def maybe_profile(self, agent: BenchAgent) -> None:
        if self.args.profile_agent:
            out = Path(self.args.profile_agent)
            out.mkdir(parents=True, exist_ok=True)
            name = agent.workdir.name
            agent.profile(
                out / f"{name}{'-gil' if self.args.profile_gil else ''}.txt", self.args.profile_gil
            )

    def finish_agent(self, agent: BenchAgent) -> None:
        began = time.monotonic()
        agent.cleanup()
        self.agents.remove(agent)
        progress(
            f"agent {agent.host} stopped and its dnsmasq, namespaces and veths removed "
            f"in {time.monotonic() - began:.1f}s"
        )

    def finish_engine(self, engine: FakeEngine) -> None:
        engine.close()
        self.engines.remove(engine)

    def wait_initial(
        self,
        engine: FakeEngine,
        agent: BenchAgent,
        nets: list[SyntheticNetwork],
        timeout: float,
    ) -> float:
        keys = [(p.id, p.revision_number) for n in nets for p in n.ports]
        try:
            return engine.wait_acked(keys, timeout, agent.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; agent log tail:\n{agent.logs()}") from None

    def latency(
        self, engine: FakeEngine, agent: BenchAgent, net: SyntheticNetwork, samples: int
    ) -> list[float]:
        out = []
        for i in range(WARMUP + samples):
            # Events come at random times: a random gap, so that publishing does not
            # phase-lock with the periodic pollers of the filesystem transport.
            time.sleep(random.uniform(0, GAP_MAX))
            port = net.new_port()
            net.ports.append(port)  # a later resync would see it too
            started = engine.publish_port(agent.host, port)
            try:
                acked = engine.wait_acked([(port.id, 1)], 15, agent.alive)
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"sample {i}: {exc}; agent log tail:\n{agent.logs()}") from None
            if i >= WARMUP:
                out.append((acked - started) * 1000)
        return out

    # -- phases -------------------------------------------------------------------------
    def ack_filesystem(self) -> None:
        url = f"filesystem://{self.tmp}/bus"
        progress(f"ack latency on {url} (polling interval {self.args.polling_interval}s)")
        engine = self.engine(url)
        nets = [SyntheticNetwork(200 + i, self.bridge(900 + i), n) for i, n in enumerate(SIZES)]
        for net in nets:
            engine.add(net)
        agent = self.agent("fs", url)
        agent.serve(nets)
        t0 = agent.start()
        self.maybe_profile(agent)
        done = self.wait_initial(engine, agent, nets, 180)
        progress(
            f"agent serves {' + '.join(map(str, SIZES))} ports, all acknowledged "
            f"{done - t0:.1f}s after its start; agent RSS {agent.rss_mb():.0f} MB"
        )
        for net, size in zip(nets, SIZES, strict=True):
            lat = self.latency(engine, agent, net, self.args.samples)
            p50, p99 = pct(lat, 50), pct(lat, 99)
            progress(
                f"{size} ports: {len(lat)} samples, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"min {min(lat):.1f} ms, max {max(lat):.1f} ms"
            )
            self.figure(f"ack_p50_ms_{size}", p50, "ms")
            self.figure(f"ack_p99_ms_{size}", p99, "ms")
        self.check_log(agent)
        self.finish_agent(agent)
        self.finish_engine(engine)

    def ack_ipv6(self) -> None:
        """The fs phase's largest network, dual stack: each port an IPv4 and an IPv6
        (DHCPv6) address, so each acknowledgement covers both host lines."""
        self._one_network("fs6", 220, "dual-stack", "_v6", ipv6=True)

    def ack_named(self) -> None:
        """The fs phase's largest network with names: a domain and the DNS service,
        each port a dns_name and a boot file, so each acknowledgement covers three
        files (DHCP record, options, DNS records)."""
        self._one_network("named", 221, "named", "_named", named=True)

    def _one_network(self, name: str, index: int, kind: str, suffix: str, **shape: bool) -> None:
        size = SIZES[-1]
        url = f"filesystem://{self.tmp}/bus-{name}"
        progress(f"ack latency at {size} {kind} ports on {url}")
        engine = self.engine(url)
        net = SyntheticNetwork(index, self.bridge(index + 700), size, **shape)
        engine.add(net)
        agent = self.agent(name, url)
        agent.serve([net])
        t0 = agent.start()
        self.maybe_profile(agent)
        done = self.wait_initial(engine, agent, [net], 180)
        progress(f"agent serves {size} ports, all acknowledged {done - t0:.1f}s after its start")
        lat = self.latency(engine, agent, net, self.args.samples)
        p50, p99 = pct(lat, 50), pct(lat, 99)
        progress(
            f"{size} {kind} ports: {len(lat)} samples, p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, max {max(lat):.1f} ms"
        )
        self.figure(f"ack_p50_ms_{size}{suffix}", p50, "ms")
        self.figure(f"ack_p99_ms_{size}{suffix}", p99, "ms")
        self.check_log(agent)
        self.finish_agent(agent)
        self.finish_engine(engine)

    def ack_rabbitmq(self) -> None:
        size = SIZES[-1]
        self.vhost = RabbitVhost(f"ovirt-ipam-bench-{self.tag}")
        try:
            url = self.vhost.create()
        except (OSError, subprocess.SubprocessError) as exc:
            progress(f"RabbitMQ phase skipped: cannot create a vhost with rabbitmqctl ({exc})")
            return
        progress(f"ack latency on RabbitMQ (vhost {self.vhost.name})")
        engine = self.engine(url)
        net = SyntheticNetwork(210, self.bridge(910), size)
        engine.add(net)
        agent = self.agent("amqp", url)
        agent.serve([net])
        t0 = agent.start()
        self.maybe_profile(agent)
        done = self.wait_initial(engine, agent, [net], 180)
        progress(f"agent serves {size} ports, all acknowledged {done - t0:.1f}s after its start")
        lat = self.latency(engine, agent, net, self.args.samples)
        p50, p99 = pct(lat, 50), pct(lat, 99)
        progress(
            f"{size} ports on RabbitMQ: {len(lat)} samples, p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, max {max(lat):.1f} ms"
        )
        self.figure(f"ack_p50_ms_{size}_rabbitmq", p50, "ms")
        self.figure(f"ack_p99_ms_{size}_rabbitmq", p99, "ms")
        self.check_log(agent)
        self.finish_agent(agent)
        self.finish_engine(engine)
        self.vhost.delete()

    def rewrite_approach(self) -> None:
        progress("rewrite-the-hostsfile-and-SIGHUP approach (plain dnsmasq)")
        counts = {100: self.args.rewrite_samples_100, 10_000: self.args.rewrite_samples_10000}
        for size in SIZES:
            self.rewrite = HostsfileDnsmasq(self.tmp / f"rewrite-{size}", f"{self.tag}{size % 7}")
            self.rewrite.plumb()
            self.rewrite.start(size)
            reads, offers = [], []
            for i in range(2 + counts[size]):
                read, offer = self.rewrite.add_host()
                if i >= 2:
                    reads.append(read * 1000)
                    offers.append(offer * 1000)
            p50 = pct(offers, 50)
            progress(
                f"{size} entries: {len(offers)} samples; to DHCPOFFER p50 {p50:.1f} ms, "
                f"max {max(offers):.1f} ms; to 'read' line p50 {pct(reads, 50):.1f} ms"
            )
            self.figure(f"rewrite_p50_ms_{size}", p50, "ms")
            self.figure(f"rewrite_p99_ms_{size}", pct(offers, 99), "ms")
            self.rewrite.close()
            self.rewrite = None

    def cold_start(self) -> None:
        url = f"filesystem://{self.tmp}/bus-cold"
        name = f"cold_start_s_{COLD_NETWORKS}x{COLD_PORTS}"
        limit = inotify_limit()
        if self.args.raise_inotify_limit and limit < self.args.raise_inotify_limit:
            self.inotify_restore = limit
            set_inotify_limit(self.args.raise_inotify_limit)
            progress(
                f"fs.inotify.max_user_instances raised from {limit} to "
                f"{self.args.raise_inotify_limit} for this phase (restored at the end)"
            )
            limit = self.args.raise_inotify_limit
        progress(
            f"cold start: {COLD_NETWORKS} networks x {COLD_PORTS} ports "
            f"(fs.inotify.max_user_instances {limit}, {inotify_instances()} in use by root)"
        )
        engine = self.engine(url)
        nets = [SyntheticNetwork(i, self.bridge(i), COLD_PORTS) for i in range(COLD_NETWORKS)]
        for net in nets:
            engine.add(net)
        agent = self.agent("cold", url)
        agent.serve(nets)
        t0 = agent.start()
        self.maybe_profile(agent)
        try:
            done = engine.wait_acked(
                [(p.id, p.revision_number) for n in nets for p in n.ports],
                self.args.cold_timeout,
                agent.alive,
            )
        except (TimeoutError, RuntimeError) as exc:
            elapsed = float("nan")
            with engine.cond:
                acked = set(engine.acked)
            full = sum(all((p.id, p.revision_number) in acked for p in n.ports) for n in nets)
            proc = agent.proc if agent.alive() else None
            progress(
                f"NOT all served: {exc}; {full} of {COLD_NETWORKS} networks fully "
                f"acknowledged after {time.monotonic() - t0:.0f}s; dnsmasq processes "
                f"{len(agent.dnsmasq_pids())}; inotify instances in use by root "
                f"{inotify_instances()} of {limit} (the agent "
                f"{inotify_instances(pids=[proc.pid]) if proc is not None else '?'}, "
                "each dnsmasq one)"
            )
            stderr = Counter(
                line.strip()
                for f in agent.state_path.rglob("dnsmasq.stderr")
                for line in f.read_text(errors="replace").splitlines()
                if line.strip()
            )
            for line, n in stderr.most_common(3):
                progress(f"  dnsmasq stderr, {n} time(s): {line[:200]}")
            if limit < 2 * COLD_NETWORKS:
                progress(
                    "  every dnsmasq needs an inotify instance (--dhcp-hostsdir): rerun with "
                    "--raise-inotify-limit 1024 to measure the agent past this limit"
                )
        else:
            elapsed = done - t0
            cpu = agent.cpu_times()
            progress(
                f"agent CPU until then: user {cpu.user:.1f}s, system {cpu.system:.1f}s "
                f"(2 cores = {2 * elapsed:.0f} core-seconds in {elapsed:.1f}s)"
            )
            syncs = ", ".join(f"{n} net(s) at {t - t0:.2f}s" for t, n in engine.syncs)
            progress(
                f"all {COLD_NETWORKS * COLD_PORTS} ports acknowledged {elapsed:.2f}s after "
                f"the agent's start; sync requests: {syncs}; ack messages "
                f"{engine.ack_messages}; dnsmasq processes {len(agent.dnsmasq_pids())}"
            )
        self.figure(name, elapsed, "s")
        if agent.alive():
            self.figure("agent_rss_mb", agent.rss_mb(), "MB")
            progress(f"agent threads: {agent.num_threads()}")
        self.check_log(agent)
        self.finish_agent(agent)
        self.finish_engine(engine)

    def check_log(self, agent: BenchAgent) -> None:
        log = agent.logfile.read_text(errors="replace")
        lines = log.splitlines()
        bad = [line for line in lines if " ERROR " in line or " WARNING " in line]
        if bad:
            progress(f"agent {agent.host} logged {len(bad)} warning/error line(s), first:")
            for line in bad[:3]:
                progress("  " + line[:300])
        # The last line of each traceback: what was raised, counted.
        raised = Counter(
            lines[i - 1]
            for i, line in enumerate(lines)
            if i
            and line[:4].isdigit()
            and lines[i - 1][:1] not in (" ", "")
            and not lines[i - 1][:4].isdigit()
        )
        for what, n in raised.most_common(5):
            progress(f"  raised {n} time(s): {what[:300]}")

    def cleanup(self) -> None:
        began = time.monotonic()
        steps = [
            *(agent.cleanup for agent in self.agents),
            *(engine.close for engine in self.engines),
        ]
        if self.rewrite is not None:
            steps.append(self.rewrite.close)
        steps.append(self.bridges.remove_all)
        if self.vhost is not None:
            steps.append(self.vhost.delete)
        restore = self.inotify_restore
        if restore is not None:
            steps.append(lambda: set_inotify_limit(restore))
        for step in steps:
            try:
                step()
            except Exception as exc:  # go on cleaning up
                progress(f"cleanup step failed: {exc!r}")
        if self.args.keep_logs:
            keep = Path(self.args.keep_logs)
            for log in [*self.tmp.glob("*/agent.log"), *self.tmp.rglob("dnsmasq.stderr")]:
                if log.stat().st_size:
                    dest = keep / log.relative_to(self.tmp)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(log, dest)
            progress(f"agent logs and non-empty dnsmasq stderr files kept in {keep}")
        remove_tree(self.tmp)
        progress(f"cleanup took {time.monotonic() - began:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rewrite-samples-100", type=int, default=100)
    parser.add_argument("--rewrite-samples-10000", type=int, default=20)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--cold-timeout", type=float, default=60, help="seconds to wait for the cold start"
    )
    parser.add_argument(
        "--raise-inotify-limit",
        type=int,
        metavar="N",
        default=0,
        help="raise fs.inotify.max_user_instances to N for the cold start (restored after)",
    )
    parser.add_argument(
        "--polling-interval",
        type=float,
        default=POLLING_INTERVAL,
        help="filesystem:// polling interval of the agent and the engine stand-in "
        "(default: the agent's default, [bus] polling_interval)",
    )
    parser.add_argument(
        "--workdir-base",
        default="/var/tmp",
        help="where the run's temporary directory (agent state paths, bus) is made",
    )
    parser.add_argument(
        "--profile-agent", metavar="DIR", help="sample each agent with py-spy into DIR"
    )
    parser.add_argument(
        "--profile-gil", action="store_true", help="with --profile-agent: only GIL holders"
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the agents' logs to DIR")
    args = parser.parse_args(argv)
    run = Run(args)
    began = time.monotonic()
    try:
        phases = {
            "fs": run.ack_filesystem,
            "fs6": run.ack_ipv6,
            "named": run.ack_named,
            "rabbitmq": run.ack_rabbitmq,
            "rewrite": run.rewrite_approach,
            "cold": run.cold_start,
        }
        for phase in args.phases.split(","):
            if phase not in phases:
                parser.error(f"unknown phase {phase!r}")
            phases[phase]()
    finally:
        run.cleanup()
    progress(f"done in {time.monotonic() - began:.0f}s")
    got = {name: value for name, value, _ in run.figures}
    for suffix, figure in (
        ("_v6", "ack_p99_v6_over_v4_10000"),
        ("_named", "ack_p99_named_over_plain_10000"),
    ):
        if f"ack_p99_ms_10000{suffix}" in got and "ack_p99_ms_10000" in got:
            run.figure(figure, got[f"ack_p99_ms_10000{suffix}"] / got["ack_p99_ms_10000"], "x")
    for suffix in ("", "_rabbitmq"):
        if f"ack_p99_ms_10000{suffix}" in got and "rewrite_p50_ms_10000" in got:
            ratio = got["rewrite_p50_ms_10000"] / got[f"ack_p99_ms_10000{suffix}"]
            run.figure(f"rewrite_p50_over_ack_p99_10000{suffix}", ratio, "x")
    for name, value, unit in run.figures:
        print(f"{name}: {value:.2f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
