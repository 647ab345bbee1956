"""``ovirt-ipam host-call HOST Host setDHCP networks='[...]'``: a vdsm-client-style
call of a host's verb over the bus, for administrators."""

from __future__ import annotations

import json
import sys
from typing import Any

from ipam.bus import contracts
from ipam.bus.host_rpc import call
from ipam.bus.messaging import Bus


def parse_params(args: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value is JSON when it parses as JSON, else a string."""
    params: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ValueError(f"expected name=value, got {arg!r}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def main(bus: Bus, host: str, namespace: str, verb: str, args: list[str], timeout: float) -> int:
    try:
        params = parse_params(args)
        contracts.validate_host(host)
    except (ValueError, contracts.ContractError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    try:
        response = call(bus, host, f"{namespace}.{verb}", params, timeout)
    except TimeoutError:
        print(
            f"Error: no answer from host {host} within {timeout}s (is 'ovirt-ipam host' "
            "running there?)",
            file=sys.stderr,
        )
        return 1
    if "error" in response:
        err = response["error"]
        print(f"Error {err['code']}: {err['message']}", file=sys.stderr)
        return 1
    print(json.dumps(response.get("result"), indent=4))
    return 0
