"""Runs Host.setDHCP/getDHCP calls through the fake VDSM and the real plug-in.

Usage: python -I -S run_plugin.py SCENARIO.json, in a tree made by the test (this
file, schema_check.py, the fake ``vdsm`` package and the plug-in's files where VDSM
carries them). The scenario gives the schema (vdsm-api-dhcp.yml as JSON), the mode
(strict or lax), ovirt-ipam's configuration file, the mapping's path, the fake
systemctl's log and the steps; the answer (stdout, JSON) is, for each step, the
JSON-RPC response, the mapping's bytes after it, and what reached supervdsm and
systemctl during it."""

import errno
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from vdsm.clientIF import clientIF  # noqa: E402
from vdsm.common import api  # noqa: E402
from vdsm.common import supervdsm  # noqa: E402
from vdsm.network import ovirt_ipam_dhcp  # noqa: E402
from vdsm.rpc import Bridge  # noqa: E402


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def _fill(directory):
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)


def _outside_modules():
    """Modules loaded from neither the standard library nor this tree."""
    roots = tuple(os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, HERE))
    found = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and not os.path.realpath(path).startswith(roots):
            found.append(f"{name}: {path}")
    return found


def main():
    with open(sys.argv[1]) as f:
        scenario = json.load(f)
    ovirt_ipam_dhcp.CONFIG_FILE = scenario["config_file"]
    bridge = Bridge.DynamicBridge(scenario["schema"], scenario["strict"])
    semaphore = clientIF.getInstance()._networkSemaphore
    systemctl_log = scenario["systemctl_log"]
    results = []
    for i, step in enumerate(scenario["steps"]):
        done_systemctl = len((_read(systemctl_log) or "").splitlines())
        del supervdsm.CALLS[:]
        del api.CALLS[:]
        response = None
        if "fill" in step:
            _fill(step["fill"])
        elif "unfill" in step:
            os.unlink(os.path.join(step["unfill"], "filler"))
        else:
            request = dict(step["call"], jsonrpc="2.0", id=i)
            if step.get("busy"):
                assert semaphore.acquire(blocking=False)
            try:
                response = bridge.call(request)
            finally:
                if step.get("busy"):
                    semaphore.release()
            json.dumps(response)  # the answer is JSON
        results.append(
            {
                "response": response,
                "mapping": _read(scenario["mapping"]),
                "supervdsm": [name for name, _ in supervdsm.CALLS],
                "logged": [list(c) for c in api.CALLS],
                "systemctl": (_read(systemctl_log) or "").splitlines()[done_systemctl:],
            }
        )
    json.dump(
        {
            "python": list(sys.version_info[:3]),
            "steps": results,
            "vdsm_networks": sorted(ovirt_ipam_dhcp.vdsm_networks(scenario["netconf"])),
            "outside_modules": _outside_modules(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
