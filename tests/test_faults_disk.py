"""A full or read-only state directory (issue 7): writing the mapping (the verb) or a
hostsdir file (the agent, with its real dnsmasq) fails with a clear error, the old
state stays whole and served, and once the directory takes writes again the agent
catches up by itself. The directories are small tmpfs mounts made by the test."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dhcp_driver.mapping import write_mapping
from ipam.polling import wait_for
from tests.agentlab import ip_of
from tests.faultlab import RecordingAgentService, check_nothing_lost, record
from vdsm_verb.verb import DhcpVerb

pytestmark = pytest.mark.root  # tmpfs mounts made by the tests


@contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(path: Path) -> Path:
    """Take every free byte of the file system at path; the filler file."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_verb_with_a_full_or_read_only_mapping_directory(tmp_path: Path) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    with tmpfs(tmp_path / "vdsm", "64k") as d:
        mapping = d / "dhcp-networks.json"
        write_mapping(mapping, [{"name": "ovirtmgmt", "id": a}])
        before = mapping.read_bytes()
        service = RecordingAgentService()
        verb = DhcpVerb(str(mapping), service, lambda: None)
        wanted = [{"name": "ovirtmgmt", "id": a}, {"name": "vmnet", "id": b}]

        filler = fill(d)
        full = verb.set_dhcp(wanted)
        assert full["status"]["code"] == 16
        assert "No space left on device" in full["status"]["message"]
        assert mapping.read_bytes() == before
        assert sorted(p.name for p in d.iterdir()) == ["dhcp-networks.json", "filler"]
        filler.unlink()

        remount(d, "ro")
        ro = verb.set_dhcp(wanted)
        assert ro["status"]["code"] == 16
        assert "Read-only file system" in ro["status"]["message"]
        assert mapping.read_bytes() == before
        assert service.calls == []  # the agent is not touched by a failed write

        remount(d, "rw")
        assert verb.set_dhcp(wanted)["status"]["code"] == 0
        assert mapping.read_bytes() != before and service.calls == ["start"]
    record(
        "fault",
        "mapping directory full, then read-only, during Host.setDHCP",
        calls=2,
        clear_errors=2,
        old_mapping_intact=2,
        partial_files_left=0,
    )


def test_agent_with_a_full_or_read_only_state_directory(world_factory) -> None:  # type: ignore[no-untyped-def]
    world = world_factory(engine_conf="[dhcp]\nready_timeout = 2\n")
    with tmpfs(world.tmp / f"agent-{world.agent.host}", "4m") as state:
        world.serve()
        world.agent.start()
        world.wait_serving()
        first = world.port()
        world.wait_active(first)
        hostsdir = state / "dhcp" / world.net_id / "hosts.d"
        kept = (hostsdir / first["id"]).read_text()

        filler = fill(state)
        during_full = world.port()  # its hostsdir file cannot be written
        assert during_full["status"] == "DOWN"
        wait_for(lambda: "No space left on device" in world.agent.logs(), 20, "the agent's error")
        assert (hostsdir / first["id"]).read_text() == kept
        assert not [p for p in hostsdir.iterdir() if p.name.startswith(".")]
        assert world.lease(first) == ip_of(first)  # what was loaded is still served
        filler.unlink()
        world.wait_active(during_full, timeout=60)  # caught up by itself

        # Read-only where the agent writes: the hostsdir bound onto itself, read-only
        # (dnsmasq keeps its lease and log files open for writing elsewhere on it).
        subprocess.run(["mount", "--bind", str(hostsdir), str(hostsdir)], check=True)
        try:
            remount(hostsdir, "bind,ro")
            during_ro = world.port()
            assert during_ro["status"] == "DOWN"
            wait_for(lambda: "Read-only file system" in world.agent.logs(), 20, "the agent's error")
            assert world.lease(during_full) == ip_of(during_full)
        finally:
            subprocess.run(["umount", str(hostsdir)], check=True)
        world.wait_active(during_ro, timeout=60)

        created = [first, during_full, during_ro]
        check_nothing_lost(world.api, world.net_id, created)
        assert [world.lease(p) for p in created[1:]] == [ip_of(p) for p in created[1:]]
        assert world.agent.proc.poll() is None
        world.close()  # its dnsmasq must let go of the tmpfs before the unmount
    record(
        "fault",
        "agent state directory full, then read-only, while ports are created",
        ports=3,
        lost=0,
        duplicated=0,
        old_entries_served=2,
        caught_up_after_fault=2,
    )
