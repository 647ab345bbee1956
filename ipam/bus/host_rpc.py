"""Calling a host's verbs (Host.setDHCP, Host.getDHCP) over the bus, JSON-RPC 2.0:
used by the DHCP manager and by ``ovirt-ipam host-call``."""

from __future__ import annotations

import os
import socket
from typing import Any

from ipam.bus import contracts
from ipam.bus.messaging import Bus


class HostCallError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def call(
    bus: Bus,
    host: str,
    method: str,
    params: dict[str, Any],
    timeout: float,
    caller: str | None = None,
) -> dict[str, Any]:
    """The JSON-RPC response (``result`` or ``error``) of method(**params) on host."""
    caller = caller or f"cli-{socket.gethostname()[:40]}-{os.getpid()}"
    request = contracts.JsonRpcRequest(
        jsonrpc="2.0", method=method, params=params, id=contracts.new_id()
    )
    reply_queue = contracts.reply_queue(caller)
    try:
        _, response = bus.call(
            contracts.host_queue(host),
            contracts.make("jsonrpc.request", request, caller),
            reply_queue,
            timeout,
        )
    finally:
        bus.delete_queue(reply_queue)
    return response.model_dump(exclude_none=True)


def set_dhcp(
    bus: Bus, host: str, networks: list[dict[str, str]], timeout: float, caller: str
) -> None:
    """Host.setDHCP(networks) on host; HostCallError when it refuses."""
    response = call(bus, host, "Host.setDHCP", {"networks": networks}, timeout, caller)
    if "error" in response:
        raise HostCallError(response["error"]["code"], response["error"]["message"])
