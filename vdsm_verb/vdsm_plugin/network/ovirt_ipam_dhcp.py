"""Host.setDHCP and Host.getDHCP: the code every server of the verb shares.

VDSM carries this file as ``vdsm/network/ovirt_ipam_dhcp.py``; vdsmd's half of the
verb (``vdsm/network/ovirt_ipam_api.py``) validates with it, supervdsm's half
(``vdsm/supervdsm_api/ovirt_ipam_dhcp.py``) writes the mapping and drives the agent
with it, and the ovirt-ipam host service (``vdsm_verb.verb``) serves the same verb
over the bus through it. The standard library only, Python 3.9 and later: it runs on
the platform Python of vdsmd and supervdsm.

**The network-to-id mapping** tells a host which oVirt networks it serves DHCP for,
and the IPAM network id of each. setDHCP writes it, the DHCP agent and its interface
driver read it. File format (UTF-8 JSON, one object)::

    {
      "version": 1,
      "networks": [
        {"name": "ovirtmgmt", "id": "6f1e2b9c-0d4a-4e57-9a39-2c0c6a7f1b11"},
        {"name": "vm_net-2",  "id": "0b9d4c1e-55aa-4c8e-8d61-3f3a1a0e9c42"}
      ]
    }

- ``version`` is the integer 1. A reader refuses any other version.
- ``networks`` is a list (possibly empty) of objects with exactly two keys:

  - ``name``: the network's VDSM name, which is also the name of its bridge on the
    host. VDSM's rule: ``[A-Za-z0-9_][A-Za-z0-9_-]{0,14}`` (1 to 15 characters,
    an interface name that needs no quoting).
  - ``id``: the network's id, a UUID in canonical form (lower-case hex,
    8-4-4-4-12 with dashes).

- No two entries share a name, no two share an id. No other keys are allowed,
  at the top level or in an entry; a JSON object with a repeated key is refused.
- A missing file means "no networks". :func:`write_mapping` writes the entries
  sorted by name, with a trailing newline, so the same set of networks always gives
  the same bytes.

Writing is atomic: a temporary file in the same directory is written, fsynced and
renamed over the file, then the directory is fsynced; readers see the old or the new
file, never a mix. The file's mode is 0600 and a missing directory is created 0700:
only its writer and root (the agent) read which networks a host serves.
Invalid input raises :class:`MappingError` and leaves the file as it was.

**The verb.** :func:`set_dhcp` validates the whole list first (a list; names by
VDSM's rule, canonical UUIDs, no duplicates, at most the configured number); on any
error nothing is written and the agent is not touched. Then it writes the mapping
and makes the DHCP agent serve exactly that list: started when it does not run,
told to re-read the mapping (reload: SIGHUP, DHCP keeps answering on the networks
that stay) when the list changed, stopped (and every DHCP server it left cleaned
up) for an empty list. The same list twice changes nothing. Refusals and failures
raise :class:`DhcpError` with VDSM's code: 21 (``ERR_BAD_PARAMS`` of the network
verbs) for an invalid list, 16 (``UnexpectedError``) when the mapping cannot be
written or the agent does not follow.

**The host's networks.** :func:`vdsm_networks` reads VDSM's running network
configuration: what ``getCapabilities()['networks']`` reports, of which the bridged
(legacy switch) ones are Linux bridges named after the network.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from typing import TypeGuard  # Python 3.10: annotations only

__all__ = [
    "AGENT_UNIT",
    "CLEANUP_UNIT",
    "COMMAND_INFO",
    "CONFIG_FILE",
    "DEFAULT_MAPPING_FILE",
    "DEFAULT_MAX_NETWORKS",
    "ERR_BAD_PARAMS",
    "ERR_UNEXPECTED",
    "FORMAT_VERSION",
    "NETCONF_DIR",
    "AgentError",
    "DhcpError",
    "MappingError",
    "SystemdAgent",
    "get_dhcp",
    "is_canonical_uuid",
    "is_vdsm_name",
    "read_mapping",
    "set_dhcp",
    "settings",
    "validate_networks",
    "validate_request",
    "vdsm_networks",
    "write_mapping",
]

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_MODE = 0o600
DIR_MODE = 0o700

# VDSM's codes: vdsm.network.errors.ERR_BAD_PARAMS, vdsm.common.exception.UnexpectedError.
ERR_BAD_PARAMS = 21
ERR_UNEXPECTED = 16

# Bridge.py's command_info: the key of the answer that is the JSON-RPC result.
# Host.setDHCP needs none: its result is True.
COMMAND_INFO = {"Host_getDHCP": {"ret": "info"}}

AGENT_UNIT = "ovirt-ipam-dhcp-agent.service"
CLEANUP_UNIT = "ovirt-ipam-dhcp-cleanup.service"
CONFIG_FILE = "/etc/ovirt-ipam/ovirt-ipam.conf"
DEFAULT_MAPPING_FILE = "/var/lib/vdsm/ovirt-ipam/dhcp-networks.json"
DEFAULT_MAX_NETWORKS = 256
# VDSM's running network configuration (vdsm.network.netconfpersistence.RunningConfig):
# one JSON file per network under nets/, the networks getCapabilities() reports.
NETCONF_DIR = "/var/lib/vdsm/staging/netconf"

# VDSM's rule for network (= bridge) names.
_VDSM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,14}")
_ENTRY_KEYS = frozenset({"name", "id"})
_TOP_KEYS = frozenset({"version", "networks"})


class MappingError(ValueError):
    """The mapping file, or a list of networks meant for it, is invalid."""


class DhcpError(Exception):
    """The verb refused or failed: ``code`` and ``msg`` are VDSM's status.

    It crosses supervdsm's connection (pickled by multiprocessing), so its
    arguments are exactly what ``__init__`` takes."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.msg = message

    def __str__(self) -> str:
        return self.msg


class AgentError(Exception):
    """The DHCP agent's service manager failed to do what was asked."""


# -- the mapping file -----------------------------------------------------------------


def is_vdsm_name(value: object) -> TypeGuard[str]:
    """True if value is a string that follows VDSM's network name rule."""
    return isinstance(value, str) and _VDSM_NAME.fullmatch(value) is not None


def is_canonical_uuid(value: object) -> TypeGuard[str]:
    """True if value is a UUID string in canonical form (lower case, with dashes)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def validate_networks(networks: Iterable[Any]) -> list[dict[str, str]]:
    """Check a list of ``{"name": ..., "id": ...}`` entries.

    Returns new dicts (same order, only ``name`` and ``id``); raises MappingError
    naming the first problem found.
    """
    if isinstance(networks, (str, bytes, dict)) or not isinstance(networks, Iterable):
        raise MappingError(f"networks must be a list, not {type(networks).__name__}")
    result: list[dict[str, str]] = []
    names: set[str] = set()
    ids: set[str] = set()
    for pos, entry in enumerate(networks):
        where = f"networks[{pos}]"
        if not isinstance(entry, dict):
            raise MappingError(f"{where} must be an object, not {type(entry).__name__}")
        keys = set(entry)
        if keys != _ENTRY_KEYS:
            missing = sorted(_ENTRY_KEYS - keys)
            extra = sorted(repr(k) for k in keys - _ENTRY_KEYS)
            problems = []
            if missing:
                problems.append(f"missing {', '.join(missing)}")
            if extra:
                problems.append(f"unknown key(s) {', '.join(extra)}")
            raise MappingError(f"{where}: {'; '.join(problems)}")
        name, net_id = entry["name"], entry["id"]
        if not is_vdsm_name(name):
            raise MappingError(
                f"{where}: name {name!r} is not a valid VDSM network name "
                "(1-15 characters of A-Z a-z 0-9 _ -, not starting with -)"
            )
        if not is_canonical_uuid(net_id):
            raise MappingError(f"{where}: id {net_id!r} is not a canonical UUID")
        if name in names:
            raise MappingError(f"{where}: duplicate name {name!r}")
        if net_id in ids:
            raise MappingError(f"{where}: duplicate id {net_id!r}")
        names.add(name)
        ids.add(net_id)
        result.append({"name": name, "id": net_id})
    return result


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MappingError(f"repeated key {key!r} in a JSON object")
        obj[key] = value
    return obj


def _parse(text: str) -> list[dict[str, str]]:
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise MappingError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MappingError(f"top level must be a JSON object, not {type(doc).__name__}")
    keys = set(doc)
    if "version" not in keys:
        raise MappingError("missing 'version'")
    version = doc["version"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise MappingError(f"unsupported version {version!r} (expected {FORMAT_VERSION})")
    if keys != _TOP_KEYS:
        if "networks" not in keys:
            raise MappingError("missing 'networks'")
        extra = ", ".join(sorted(repr(k) for k in keys - _TOP_KEYS))
        raise MappingError(f"unknown top-level key(s) {extra}")
    if not isinstance(doc["networks"], list):
        raise MappingError(f"'networks' must be a list, not {type(doc['networks']).__name__}")
    return validate_networks(doc["networks"])


def read_mapping(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return ``{network id: vdsm name}`` from the mapping file at path.

    A missing file gives an empty dict; an unreadable or invalid one raises
    MappingError naming the path and the problem.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise MappingError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        entries = _parse(text)
    except UnicodeDecodeError as exc:
        raise MappingError(f"{os.fspath(path)}: not UTF-8: {exc}") from None
    except MappingError as exc:
        raise MappingError(f"{os.fspath(path)}: {exc}") from None
    return {entry["id"]: entry["name"] for entry in entries}


def _serialize(entries: list[dict[str, str]]) -> bytes:
    ordered = sorted(entries, key=lambda e: (e["name"], e["id"]))
    doc = {"version": FORMAT_VERSION, "networks": ordered}
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _make_dirs(directory: str) -> None:
    """Create directory and missing parents, each with mode 0700 (whatever the umask)."""
    missing: list[str] = []
    current = directory
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
            continue
        os.chmod(d, DIR_MODE)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_mapping(path: str | os.PathLike[str], networks: Iterable[Any]) -> bool:
    """Validate networks and atomically replace the mapping file at path with them.

    Returns True if the file changed, False if it already held exactly this content
    (then nothing is written). Raises MappingError, touching nothing, on bad input.
    """
    entries = validate_networks(networks)
    data = _serialize(entries)
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    try:
        with open(target, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    except OSError:
        pass  # unreadable: rewrite it
    _make_dirs(directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return True


# -- the verb -------------------------------------------------------------------------


def validate_request(networks: Any, max_networks: int | None = None) -> list[dict[str, str]]:
    """The whole check of setDHCP's ``networks``: DhcpError(21) naming the problem.

    max_networks None: no length limit (vdsmd checks the rest before supervdsm,
    which knows the configured limit, checks everything again)."""
    if not isinstance(networks, list):
        raise DhcpError(
            ERR_BAD_PARAMS,
            f"networks must be a list of {{name, id}}, not {type(networks).__name__}",
        )
    if max_networks is not None and len(networks) > max_networks:
        raise DhcpError(
            ERR_BAD_PARAMS,
            f"networks has {len(networks)} entries; at most {max_networks} are allowed",
        )
    try:
        return validate_networks(networks)
    except MappingError as exc:
        raise DhcpError(ERR_BAD_PARAMS, f"Invalid networks: {exc}") from None


@contextlib.contextmanager
def _mapping_lock(mapping_path: str) -> Iterator[None]:
    """One setDHCP at a time per mapping, across processes (vdsmd's supervdsm and
    the ovirt-ipam host service may both serve the verb): flock on its directory."""
    directory = os.path.dirname(os.path.abspath(mapping_path))
    _make_dirs(directory)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def set_dhcp(
    networks: Any,
    mapping_path: str,
    agent: Any,
    max_networks: int = DEFAULT_MAX_NETWORKS,
    cleanup: Callable[[], None] | None = None,
) -> list[dict[str, str]]:
    """setDHCP(networks): validate, write the mapping, make the agent follow.

    agent: running() -> pid or None, start(), reconcile(), stop() (a
    :class:`SystemdAgent`, or the host service's direct supervision). cleanup:
    called after the agent stopped for an empty list, to stop what it left serving
    (its dnsmasq processes survive it) and remove its interfaces. Returns the
    entries written; raises DhcpError (21 refused, nothing changed; 16 failed)."""
    entries = validate_request(networks, max_networks)
    try:
        with _mapping_lock(mapping_path):
            try:
                changed = write_mapping(mapping_path, entries)
            except (OSError, MappingError) as exc:
                LOG.error(
                    "setDHCP: cannot write %s: %s; the old mapping is intact", mapping_path, exc
                )
                raise DhcpError(
                    ERR_UNEXPECTED, f"Cannot write the DHCP network mapping {mapping_path}: {exc}"
                ) from None
            try:
                _converge(agent, entries, changed, cleanup)
            except (AgentError, OSError) as exc:
                LOG.error("setDHCP: the DHCP agent did not follow: %s", exc)
                raise DhcpError(
                    ERR_UNEXPECTED, f"Mapping written, but the DHCP agent: {exc}"
                ) from None
    except OSError as exc:  # the mapping's directory cannot be made or locked
        raise DhcpError(
            ERR_UNEXPECTED, f"Cannot write the DHCP network mapping {mapping_path}: {exc}"
        ) from None
    LOG.info(
        "setDHCP: %d network(s) %s",
        len(entries),
        ", ".join(f"{e['name']}={e['id']}" for e in entries) or "(none)",
    )
    return entries


def _converge(
    agent: Any,
    entries: list[dict[str, str]],
    changed: bool,
    cleanup: Callable[[], None] | None,
) -> None:
    pid = agent.running()
    if entries:
        if pid is None:
            LOG.info("setDHCP: starting the DHCP agent")
            agent.start()
        elif changed:
            LOG.info("setDHCP: the DHCP agent pid=%d re-reads the mapping", pid)
            agent.reconcile()
        return
    if pid is not None:
        LOG.info("setDHCP: no networks; stopping the DHCP agent pid=%d", pid)
        agent.stop()
    if cleanup is not None:
        cleanup()


def get_dhcp(mapping_path: str, agent: Any) -> dict[str, Any]:
    """getDHCP(): the networks in the mapping (by name) and the agent's state.

    ``agent.pid`` is there only while the agent runs (optional in the schema)."""
    try:
        mapping = read_mapping(mapping_path)
        pid = agent.running()
    except (MappingError, AgentError, OSError) as exc:
        raise DhcpError(ERR_UNEXPECTED, str(exc)) from None
    networks = [
        {"name": name, "id": net_id}
        for net_id, name in sorted(mapping.items(), key=lambda item: item[1])
    ]
    state: dict[str, Any] = {"running": pid is not None}
    if pid is not None:
        state["pid"] = pid
    return {"networks": networks, "agent": state}


class SystemdAgent:
    """The DHCP agent as a systemd unit: ``systemctl start``, ``reload`` (the unit
    sends SIGHUP), ``stop``; :meth:`cleanup` runs the oneshot unit that stops what a
    stopped agent left serving."""

    def __init__(
        self,
        unit: str = AGENT_UNIT,
        cleanup_unit: str = CLEANUP_UNIT,
        systemctl: str = "systemctl",
    ) -> None:
        self.unit, self.cleanup_unit, self.systemctl = unit, cleanup_unit, systemctl

    def _ctl(self, *args: str, unit: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.systemctl, *args, unit or self.unit],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _do(self, action: str, unit: str | None = None) -> None:
        result = self._ctl(action, unit=unit)
        if result.returncode != 0:
            raise AgentError(
                f"systemctl {action} {unit or self.unit} failed: {result.stderr.strip()}"
            )

    def running(self) -> int | None:
        """The agent's pid when it runs."""
        out = self._ctl("show", "--property=MainPID", "--value")
        try:
            pid = int(out.stdout.strip() or 0)
        except ValueError:
            raise AgentError(f"systemctl show {self.unit}: no MainPID in {out.stdout!r}") from None
        return pid or None

    def start(self) -> None:
        self._do("start")

    def reconcile(self) -> None:
        """Make the running agent re-read the mapping, without interrupting DHCP."""
        self._do("reload")

    def stop(self) -> None:
        self._do("stop")

    def cleanup(self) -> None:
        self._do("start", unit=self.cleanup_unit)


# -- configuration --------------------------------------------------------------------


def settings(path: str | None = None) -> tuple[str, int]:
    """(mapping file, max networks) from ovirt-ipam's configuration file.

    The privileged half of the verb in VDSM writes the mapping where the agent
    reads it: ``[dhcp_agent] mapping_file`` and ``[host] max_networks`` of
    /etc/ovirt-ipam/ovirt-ipam.conf, the file the agent's unit starts it with (the
    defaults when the file or the option is absent). DhcpError(16) when the file
    cannot be read or the values cannot be used."""
    path = CONFIG_FILE if path is None else path
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        return DEFAULT_MAPPING_FILE, DEFAULT_MAX_NETWORKS
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise DhcpError(ERR_UNEXPECTED, f"Cannot read {path}: {exc}") from None
    mapping = parser.get("dhcp_agent", "mapping_file", fallback=DEFAULT_MAPPING_FILE).strip()
    if not os.path.isabs(mapping) or "$" in mapping:
        raise DhcpError(
            ERR_UNEXPECTED,
            f"{path}: [dhcp_agent] mapping_file = {mapping!r}: give an absolute path "
            "without substitutions",
        )
    raw_max = parser.get("host", "max_networks", fallback=str(DEFAULT_MAX_NETWORKS)).strip()
    try:
        max_networks = int(raw_max)
        if max_networks < 1:
            raise ValueError
    except ValueError:
        raise DhcpError(
            ERR_UNEXPECTED, f"{path}: [host] max_networks = {raw_max!r} is not an integer >= 1"
        ) from None
    return mapping, max_networks


# -- the host's networks --------------------------------------------------------------


def vdsm_networks(netconf_dir: str = NETCONF_DIR) -> set[str] | None:
    """The bridged networks of VDSM's running configuration, by name (= bridge name).

    ``netconf_dir/nets/NAME`` holds one network's attributes (JSON): VDSM reports
    those of legacy switch type, and a bridged one is a Linux bridge named NAME
    (``bridged`` and ``switch`` default as VDSM's canonicalization sets them).
    None when netconf_dir does not exist: VDSM is not on this host. A file that
    cannot be read (being replaced) or is not VDSM's is skipped."""
    if not os.path.isdir(netconf_dir):
        return None
    nets_dir = os.path.join(netconf_dir, "nets")
    try:
        names = os.listdir(nets_dir)
    except FileNotFoundError:
        return set()
    except OSError as exc:
        LOG.warning("Cannot list VDSM's networks in %s: %s", nets_dir, exc)
        return set()
    found = set()
    for name in names:
        if not is_vdsm_name(name):
            continue
        try:
            with open(os.path.join(nets_dir, name), encoding="utf-8") as f:
                attrs = json.load(f)
        except (OSError, ValueError) as exc:
            if not (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
                LOG.warning("Skipping VDSM network %s: %s", name, exc)
            continue
        if (
            isinstance(attrs, dict)
            and attrs.get("bridged", True) is True
            and attrs.get("switch", "legacy") == "legacy"
        ):
            found.add(name)
    return found
