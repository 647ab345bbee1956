"""Host.setDHCP as VDSM carries it: the plug-in's files, placed where VDSM keeps them
in a fake of VDSM's seams (tests/fake_vdsm: supervdsm's proxy, API.Global and its
decorators, the response module, the JSON-RPC bridge with strict or lax schema
checks), run with ``python -I -S`` (no third-party package) on Python 3.9, the
platform Python of vdsmd on EL9, and on the current Python; and the schema entries
checked against the plug-in and against every answer it gives."""

from __future__ import annotations

import ast
import copy
import glob
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from dhcp_driver.agent import cleanup_unmapped
from dhcp_driver.mapping import write_mapping
from tests.fake_vdsm import schema_check
from tests.fake_vdsm.schema_check import SchemaMismatch
from vdsm_verb import vdsm_plugin
from vdsm_verb.vdsm_plugin.network import ovirt_ipam_dhcp as core
from vdsm_verb.verb import DhcpVerb

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_vdsm"
SCHEMA = yaml.safe_load(vdsm_plugin.SCHEMA.read_text())
MAX = 8  # [host] max_networks of the scenario's ovirt-ipam.conf

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> {log}
case "$1 $2" in
  show*) cat {pid} 2>/dev/null || echo 0 ;;
  "start {agent}") echo 4242 > {pid} ;;
  "stop {agent}") echo 0 > {pid} ;;
  "reload {agent}") [ "$(cat {pid} 2>/dev/null)" = 4242 ] || {{ echo "not active" >&2; exit 1; }} ;;
esac
"""


def _find_python(version: str) -> str | None:
    """An interpreter of that version that runs: OVIRT_IPAM_PYTHON<39>, pyenv's, or
    pythonX.Y on PATH (not a pyenv shim, which may not be set to it)."""
    candidates = [os.environ.get(f"OVIRT_IPAM_PYTHON{version.replace('.', '')}")]
    for root in (os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv"), "/root/.pyenv"):
        if root:
            candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    candidates.append(shutil.which(f"python{version}"))
    for candidate in candidates:
        if not candidate or "/shims/" in candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def _interpreter(request: pytest.FixtureRequest) -> str:
    version = request.param
    if version == "current":
        return sys.executable
    python = _find_python(version)
    if python is None:
        pytest.skip(
            f"no Python {version} interpreter here (set OVIRT_IPAM_PYTHON"
            f"{version.replace('.', '')}, or install it with pyenv): the plug-in's run "
            f"on VDSM's platform Python {version} is not checked"
        )
    return python


# 3.9: vdsmd on EL9; 3.12: on EL10; and the Python the project runs on.
python = pytest.fixture(params=["3.9", "3.12", "current"])(_interpreter)


def build_tree(dest: Path) -> Path:
    """The fake VDSM with the plug-in's files where VDSM carries them."""
    shutil.copytree(FAKE, dest, ignore=shutil.ignore_patterns("__pycache__", "ruff.toml", "*.md"))
    for src, place in vdsm_plugin.FILES.items():
        shutil.copy(vdsm_plugin.HERE / src, dest / "vdsm" / place)
    return dest


class Vdsm:
    """A host: the fake VDSM tree, a fake systemctl, ovirt-ipam.conf, the mapping
    directory on a small tmpfs (to fill it)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tree = build_tree(tmp / "tree")
        self.lib = tmp / "lib"
        self.lib.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(self.lib)], check=True
        )
        self.mapping = self.lib / "ovirt-ipam" / "dhcp-networks.json"
        self.conf = tmp / "ovirt-ipam.conf"
        self.conf.write_text(
            f"[dhcp_agent]\nmapping_file = {self.mapping}\n\n[host]\nmax_networks = {MAX}\n"
        )
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.systemctl_log = tmp / "systemctl.log"
        fake = self.bin / "systemctl"
        fake.write_text(
            FAKE_SYSTEMCTL.format(log=self.systemctl_log, pid=tmp / "pid", agent=core.AGENT_UNIT)
        )
        fake.chmod(0o755)
        self.netconf = tmp / "netconf"  # VDSM's running configuration
        (self.netconf / "nets").mkdir(parents=True)
        for name, attrs in {"ovirtmgmt": {"bridged": True}, "storage": {"bridged": False}}.items():
            (self.netconf / "nets" / name).write_text(json.dumps(dict(attrs, switch="legacy")))

    def run(self, python: str, steps: list[dict[str, Any]], strict: bool) -> dict[str, Any]:
        scenario = self.tmp / "scenario.json"
        scenario.write_text(
            json.dumps(
                {
                    "schema": SCHEMA,
                    "strict": strict,
                    "config_file": str(self.conf),
                    "mapping": str(self.mapping),
                    "systemctl_log": str(self.systemctl_log),
                    "netconf": str(self.netconf),
                    "steps": steps,
                }
            )
        )
        env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "LC_ALL": "C.UTF-8"}
        proc = subprocess.run(
            [python, "-I", "-S", str(self.tree / "run_plugin.py"), str(scenario)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.lib)], check=False)


@pytest.fixture
def vdsm(tmp_path: Path):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root (a tmpfs for the full-disk case)")
    host = Vdsm(tmp_path)
    try:
        yield host
    finally:
        host.close()


def _net(name: str, net_id: str | None = None) -> dict[str, str]:
    return {"name": name, "id": net_id or str(uuid.uuid4())}


A, B = _net("ovirtmgmt"), _net("vm_net-2")
AGENT = core.AGENT_UNIT

# (what, networks, refused by the schema in strict mode, position the message names)
INVALID: list[tuple[str, Any, bool, int | None]] = [
    ("a string (vdsm-client name=value)", json.dumps([A]), True, None),
    ("an entry that is not an object", [A, "vm_net-2"], True, None),
    ("a null entry", [None], True, None),
    ("an entry without id", [{"name": "vm_net-2"}], True, None),
    ("an entry with another key", [dict(B, vlan=5)], True, None),
    ("a name that is not a string", [{"name": 7, "id": B["id"]}], True, None),
    ("an id that is not a string", [{"name": "vm_net-2", "id": 7}], True, None),
    ("a name with a space", [A, _net("bad name")], False, 1),
    ("a name with a newline", [_net("a\nb")], False, 0),
    ("a name of 16 characters", [_net("n" * 16)], False, 0),
    ("a name starting with -", [_net("-net")], False, 0),
    ("an empty name", [_net("")], False, 0),
    ("an upper-case id", [_net("net", str(uuid.uuid4()).upper())], False, 0),
    ("an id that is no UUID", [_net("net", "not-a-uuid")], False, 0),
    ("a braced id", [_net("net", "{" + str(uuid.uuid4()) + "}")], False, 0),
    ("two entries with one name", [A, _net("ovirtmgmt")], False, 1),
    ("two entries with one id", [A, _net("other", A["id"])], False, 1),
    ("more than the configured maximum", [_net(f"n{i}") for i in range(MAX + 1)], False, None),
]


def _call(method: str, **params: Any) -> dict[str, Any]:
    return {"call": {"method": f"Host.{method}", "params": params}}


def _ok(step: dict[str, Any]) -> Any:
    assert "error" not in step["response"], step["response"]
    return step["response"]["result"]


def _error(step: dict[str, Any]) -> tuple[int, str]:
    assert "error" in step["response"], step["response"]
    return step["response"]["error"]["code"], step["response"]["error"]["message"]


def _mapping(networks: list[dict[str, str]]) -> str:
    doc = {"version": 1, "networks": sorted(networks, key=lambda n: n["name"])}
    return json.dumps(doc, indent=2) + "\n"


@pytest.mark.root  # the mapping directory is a tmpfs mount (the full-disk case)
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_json_rpc_round_trip_through_vdsm(vdsm: Vdsm, python: str, strict: bool) -> None:
    steps = [
        _call("setDHCP", networks=[A]),  # 0
        _call("setDHCP", networks=[A]),  # 1 the same list
        _call("getDHCP"),  # 2
        _call("setDHCP", networks=[B, A]),  # 3
        dict(_call("setDHCP", networks=[A]), busy=True),  # 4 another network verb runs
        {"fill": str(vdsm.lib)},  # 5
        _call("setDHCP", networks=[B]),  # 6 no space left
        {"unfill": str(vdsm.lib)},  # 7
        {"call": {"method": "Host.setDHCP", "params": {}}},  # 8 no networks
    ]
    first_invalid = len(steps)
    steps += [_call("setDHCP", networks=bad) for _, bad, _, _ in INVALID]
    steps += [
        _call("setDHCP", networks=[]),  # stop
        _call("getDHCP"),
        _call("setDHCP", networks=[]),  # twice is fine
    ]
    out = vdsm.run(python, steps, strict)
    s = out["steps"]
    assert out["outside_modules"] == []  # the standard library, the fake VDSM, the plug-in
    assert out["vdsm_networks"] == ["ovirtmgmt"]

    assert _ok(s[0]) is True
    assert s[0]["mapping"] == _mapping([A])
    assert s[0]["supervdsm"] == ["ovirt_ipam_set_dhcp"]
    assert s[0]["logged"] == [["api.network", "setDHCP"]]
    assert s[0]["systemctl"] == [f"show --property=MainPID --value {AGENT}", f"start {AGENT}"]
    assert _ok(s[1]) is True and s[1]["mapping"] == s[0]["mapping"]
    assert s[1]["systemctl"] == [f"show --property=MainPID --value {AGENT}"]  # nothing to do
    assert _ok(s[2]) == {"networks": [A], "agent": {"running": True, "pid": 4242}}
    assert s[2]["supervdsm"] == ["ovirt_ipam_get_dhcp"]
    assert _ok(s[3]) is True and s[3]["mapping"] == _mapping([A, B])
    assert s[3]["systemctl"][-1] == f"reload {AGENT}"  # re-read, not restarted

    code, message = _error(s[4])
    assert code == 40 and "Another network verb" in message
    assert s[4]["supervdsm"] == [] and s[4]["mapping"] == s[3]["mapping"]

    code, message = _error(s[6])
    assert code == 16 and "No space left on device" in message
    assert s[6]["mapping"] == s[3]["mapping"] and s[6]["systemctl"] == []

    code, message = _error(s[8])
    assert code == (-32602 if strict else -32603), message
    assert "networks" in message
    assert s[8]["supervdsm"] == [] and s[8]["logged"] == []  # the verb is never reached

    for i, (what, _, schema_refuses, pos) in enumerate(INVALID):
        step = s[first_invalid + i]
        code, message = _error(step)
        if strict and schema_refuses:
            assert code == -32602, (what, message)
        else:
            assert code == 21, (what, message)
            if pos is not None:
                assert f"networks[{pos}]" in message, (what, message)
        assert step["mapping"] == s[3]["mapping"], what  # byte-identical
        assert step["systemctl"] == [], what  # the agent untouched
        if code == 21 and what != "more than the configured maximum":
            assert step["supervdsm"] == [], what  # refused in vdsmd already

    stop, state, again = s[-3], s[-2], s[-1]
    assert _ok(stop) is True and stop["mapping"] == _mapping([])
    assert stop["systemctl"] == [
        f"show --property=MainPID --value {AGENT}",
        f"stop {AGENT}",
        f"start {core.CLEANUP_UNIT}",
    ]
    assert _ok(state) == {"networks": [], "agent": {"running": False}}
    assert _ok(again) is True
    assert again["systemctl"] == [
        f"show --property=MainPID --value {AGENT}",
        f"start {core.CLEANUP_UNIT}",
    ]
    if python != sys.executable:
        assert out["python"][:2] != list(sys.version_info[:2])


# -- the schema entries ---------------------------------------------------------------

_TYPE_KEYS = {"added", "description", "name", "type", "properties", "sourcetype", "values"}
_FIELD_KEYS = {"name", "description", "type", "defaultvalue", "added"}


def _check_type_entry(name: str, entry: dict[str, Any]) -> None:
    assert set(entry) <= _TYPE_KEYS, (name, entry)
    assert entry["name"] == name and entry["description"].strip()
    assert entry["type"] in {"object", "alias", "enum", "map", "union"}
    if entry["type"] == "object":
        for prop in entry["properties"]:
            assert set(prop) <= _FIELD_KEYS and prop["description"].strip(), prop
            _check_spec(prop["type"])


def _check_spec(spec: Any) -> None:
    if isinstance(spec, list):
        assert len(spec) == 1
        _check_spec(spec[0])
    elif isinstance(spec, str):
        assert spec in schema_check.PRIMITIVES, spec
    else:
        assert isinstance(spec, dict) and spec["name"] in SCHEMA["types"], spec
        assert spec == SCHEMA["types"][spec["name"]]  # an anchor of a declared type


def _signature(name: str) -> list[str]:
    """The parameters of an API.Global method of the plug-in (it imports VDSM: parsed)."""
    module = vdsm_plugin.HERE / "network" / "ovirt_ipam_api.py"
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return [a.arg for a in node.args.args]
    raise AssertionError(f"no {name} in {module}")


def test_schema_entries_have_vdsm_structure_and_match_the_plugin() -> None:
    assert set(SCHEMA) == {"types", "Host.setDHCP", "Host.getDHCP"}
    for name, entry in SCHEMA["types"].items():
        _check_type_entry(name, entry)
    ours = {k: v for k, v in SCHEMA["types"].items() if k != "UUID"}
    for name, entry in [*ours.items(), ("Host.setDHCP", SCHEMA["Host.setDHCP"])]:
        # An oVirt release, as in vdsm-api.yml ('4.5.5'), not VDSM's version (4.50.x).
        assert re.fullmatch(r"4\.5\.\d+", entry["added"]), (name, entry["added"])
    assert SCHEMA["Host.getDHCP"]["added"] == SCHEMA["Host.setDHCP"]["added"]
    for name in ("Host.setDHCP", "Host.getDHCP"):
        assert set(SCHEMA[name]) <= {"added", "description", "params", "return"}
        for param in SCHEMA[name].get("params", []):
            assert set(param) <= _FIELD_KEYS and param["description"].strip()
            _check_spec(param["type"])

    set_params = [p["name"] for p in SCHEMA["Host.setDHCP"]["params"]]
    assert set_params == ["networks"]
    assert all("defaultvalue" not in p for p in SCHEMA["Host.setDHCP"]["params"])  # required
    assert _signature("setDHCP") == ["self", *set_params]
    assert [*inspect.signature(DhcpVerb.set_dhcp).parameters] == ["self", *set_params]
    assert inspect.signature(DhcpVerb.set_dhcp).parameters["networks"].default is inspect._empty
    assert "params" not in SCHEMA["Host.getDHCP"] and _signature("getDHCP") == ["self"]
    assert "return" not in SCHEMA["Host.setDHCP"]  # its result is True
    assert SCHEMA["Host.getDHCP"]["return"]["type"] == SCHEMA["types"]["DhcpState"]
    # setDHCP's networks are what getDHCP gives back, and what the mapping holds.
    assert SCHEMA["Host.setDHCP"]["params"][0]["type"] == [SCHEMA["types"]["DhcpNetwork"]]
    assert [p["name"] for p in SCHEMA["types"]["DhcpNetwork"]["properties"]] == ["name", "id"]
    # Bridge.py: getDHCP's answer is under 'info', as the Host getters'; setDHCP none.
    assert core.COMMAND_INFO == {"Host_getDHCP": {"ret": "info"}}
    bridge = ast.parse((FAKE / "vdsm" / "rpc" / "Bridge.py").read_text())
    info = next(
        n.value
        for n in bridge.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "command_info"
    )
    assert ast.literal_eval(info) == core.COMMAND_INFO  # what the round trip runs with


def test_every_answer_agrees_with_the_schema_field_by_field(tmp_path: Path) -> None:
    """getDHCP's answers (agent stopped and running, with and without networks), as
    the plug-in's shared code and the host service give them, pass strict mode; and
    the check is not vacuous: each wrong field is caught."""
    ret = SCHEMA["Host.getDHCP"]["return"]["type"]

    class Agent:
        def __init__(self, pid: int | None) -> None:
            self.pid = pid

        def running(self) -> int | None:
            return self.pid

    answers = []
    for pid in (None, 4242):
        for nets in ([], [A, B]):
            path = str(tmp_path / f"{uuid.uuid4()}.json")  # none: no networks
            if nets:
                write_mapping(path, nets)
            answers.append(core.get_dhcp(path, Agent(pid)))
            verb = DhcpVerb(path, Agent(pid), lambda: None).get_dhcp()
            assert verb["status"] == {"code": 0, "message": "Done"}
            assert verb[core.COMMAND_INFO["Host_getDHCP"]["ret"]] == answers[-1]
    for answer in answers:
        schema_check.check(ret, answer, "getDHCP")
    assert {a["agent"]["running"] for a in answers} == {True, False}
    assert answers[0] == {"networks": [], "agent": {"running": False}}
    assert answers[-1]["networks"] == sorted([A, B], key=lambda n: n["name"])

    good = answers[-1]
    wrong: list[tuple[str, Any]] = [
        ("agent.pid as a string", {"agent": {"running": True, "pid": "4242"}}),
        ("agent.running as an int", {"agent": {"running": 1, "pid": 4242}}),
        ("agent.running missing", {"agent": {"pid": 4242}}),
        ("agent with another key", {"agent": {"running": True, "pid": 1, "since": 0}}),
        ("networks not a list", {"networks": {"ovirtmgmt": A["id"]}}),
        ("a network's id an int", {"networks": [{"name": "ovirtmgmt", "id": 5}]}),
        ("a network without name", {"networks": [{"id": A["id"]}]}),
        ("networks missing", {"networks": None}),
    ]
    for what, change in wrong:
        bad = copy.deepcopy(good)
        bad.update(change)
        with pytest.raises(SchemaMismatch):
            schema_check.check(ret, bad, what)
            pytest.fail(f"not caught: {what}")
    # A stopped agent's pid is optional (defaultvalue); without that, strict mode
    # refuses the stopped agent's answer, as it did before.
    stopped = answers[0]
    strict_pid = copy.deepcopy(ret)
    for prop in strict_pid["properties"][1]["type"]["properties"]:
        prop.pop("defaultvalue", None)
    with pytest.raises(SchemaMismatch, match="pid"):
        schema_check.check(strict_pid, stopped)


# -- the cleanup unit's command -------------------------------------------------------


@pytest.mark.root  # dhcp-cleanup reads /run/netns and the links of the machine's netns
def test_dhcp_cleanup_removes_only_networks_not_in_the_mapping(tmp_path: Path) -> None:
    kept, gone = str(uuid.uuid4()), str(uuid.uuid4())
    mapping = tmp_path / "vdsm" / "dhcp-networks.json"
    write_mapping(mapping, [{"name": "ovirtmgmt", "id": kept}])
    state = tmp_path / "state"
    for net in (kept, gone):
        (state / "dhcp" / net).mkdir(parents=True)
    conf = tmp_path / "ovirt-ipam.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state}\n[dhcp_agent]\nmapping_file = {mapping}\n"
        f"namespace_prefix = t-{uuid.uuid4().hex[:6]}-\n"
    )
    argv = [sys.executable, "-m", "ipam.cli.main", "dhcp-cleanup", "--config-file", str(conf)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (state / "dhcp").iterdir()) == [kept]

    mapping.write_text("{not json")  # unreadable: nothing is stopped
    (state / "dhcp" / gone).mkdir()
    settings = SimpleNamespace(
        state_path=str(state),
        dhcp_agent=SimpleNamespace(mapping_file=str(mapping), namespace_prefix="t-x-"),
    )
    assert cleanup_unmapped(settings) == 1  # type: ignore[arg-type]
    assert sorted(p.name for p in (state / "dhcp").iterdir()) == sorted([kept, gone])


# -- the configuration supervdsm reads -------------------------------------------------


def test_settings_come_from_ovirt_ipam_conf(tmp_path: Path) -> None:
    conf = tmp_path / "ovirt-ipam.conf"
    assert core.settings(str(conf)) == (core.DEFAULT_MAPPING_FILE, core.DEFAULT_MAX_NETWORKS)
    conf.write_text("[dhcp_agent]\nmapping_file = /srv/m.json\n[host]\nmax_networks = 3\n")
    assert core.settings(str(conf)) == ("/srv/m.json", 3)
    for bad in ("mapping_file = $state_path/m.json", "mapping_file = m.json"):
        conf.write_text(f"[dhcp_agent]\n{bad}\n")
        with pytest.raises(core.DhcpError, match="mapping_file") as err:
            core.settings(str(conf))
        assert err.value.code == 16
    conf.write_text("[host]\nmax_networks = many\n")
    with pytest.raises(core.DhcpError, match="max_networks"):
        core.settings(str(conf))
    # The agent's default is supervdsm's default.
    from dhcp_driver.config import agent_opts

    assert {o.name: o.default for o in agent_opts}["mapping_file"] == core.DEFAULT_MAPPING_FILE
