"""Helpers of the fault tests: a RabbitMQ vhost of one's own, port-creating clients
that record every answer, the checks that nothing was lost or duplicated, and the
record of what was injected (for docs/reliability.md)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ipam.lab.netparts import rand
from ipam.polling import wait_for

RESULTS = Path(os.environ.get("OVIRT_IPAM_RELIABILITY", "build/reliability.jsonl"))


def record(kind: str, name: str, **figures: Any) -> None:
    """One line of the reliability record: a fault survived or a class of bad input
    refused, with its figures (tools/reliability_report.py makes the table)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps({"kind": kind, "name": name, **figures}) + "\n")


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"rabbitmqctl {args}: {done.stderr}"
    return done.stdout


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A vhost for one test (its queues cannot meet another test's); the AMQP URL."""
    vhost = f"ovirt-ipam-t-{rand(8)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def restart_rabbitmq(down_for: float = 4.0) -> float:
    """Stop the broker's application, leave it stopped ``down_for`` seconds (the length
    of the outage injected), start it again (the node process stays: we did not start
    it); returns how long it was away."""
    start = time.monotonic()
    rabbitmqctl("stop_app")
    threading.Event().wait(down_for)
    rabbitmqctl("start_app")
    wait_for(lambda: port_open(5672), 60, "RabbitMQ back", interval=0.1)
    return time.monotonic() - start


def port_open(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:port."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class PortCreator(threading.Thread):
    """Creates ports one after another and records every answer (or transport error)."""

    def __init__(self, url: str, network_id: str, count: int, pause: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.url, self.network_id, self.count, self.pause = url, network_id, count, pause
        self.answers: list[tuple[int, dict[str, Any] | str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as api:
            for n in range(self.count):
                if self.stop.is_set():
                    return
                try:
                    resp = api.post(
                        "/v2.0/ports",
                        json={
                            "port": {
                                "network_id": self.network_id,
                                "name": f"fault-{n}",
                                "device_owner": "oVirt",
                            }
                        },
                    )
                    body = resp.json().get("port") if resp.status_code == 201 else resp.text
                    self.answers.append((resp.status_code, body))
                except httpx.HTTPError as exc:
                    self.answers.append((0, f"{type(exc).__name__}: {exc}"))
                self.stop.wait(self.pause)

    def created(self) -> list[dict[str, Any]]:
        return [body for code, body in self.answers if code == 201]  # type: ignore[misc]


def check_nothing_lost(
    api: httpx.Client, network_id: str, created: list[dict[str, Any]], unanswered: int = 0
) -> None:
    """Every port whose create answered 201 exists once, as answered; beyond those, at
    most ``unanswered`` ports exist (requests whose answer was lost with a killed
    engine); no request was carried out twice; no IP or MAC is held twice."""
    ports = api.get("/v2.0/ports", params={"network_id": network_id}).json()["ports"]
    mine = [p for p in ports if p["device_owner"] != "network:dhcp"]
    by_id = {p["id"]: p for p in mine}
    for port in created:
        assert port["id"] in by_id, f"port {port['id']} answered 201 but is gone"
        assert by_id[port["id"]]["fixed_ips"] == port["fixed_ips"]
    assert len(mine) - len(created) <= unanswered, "ports exist that no request made"
    names = [p["name"] for p in mine if p["name"]]  # (PortCreator names each request)
    assert len(names) == len(set(names)), "a request was carried out twice"
    ips = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
    assert len(ips) == len(set(ips)), "an IP is held twice"
    macs = [p["mac_address"] for p in ports]
    assert len(macs) == len(set(macs)), "a MAC is held twice"


class RecordingAgentService:
    """The verb's seam to the agent's service manager, recording what it is asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def running(self) -> int | None:
        return 4242 if "start" in self.calls else None

    def start(self) -> None:
        self.calls.append("start")

    def reconcile(self) -> None:
        self.calls.append("reconcile")

    def stop(self) -> None:
        self.calls.append("stop")
