"""The network-to-id mapping that ``Host.setDHCP`` writes and the interface driver reads.

It tells a host which oVirt networks it must serve DHCP for, and the IPAM network id
of each. The path comes from configuration (under the VDSM state directory).

File format (UTF-8 JSON, one object)::

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
only its writer (VDSM) and root (the agent) read which networks a host serves.
Invalid input raises :class:`MappingError` and leaves the file as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MappingError",
    "is_canonical_uuid",
    "is_vdsm_name",
    "read_mapping",
    "validate_networks",
    "write_mapping",
]

FORMAT_VERSION = 1
FILE_MODE = 0o600
DIR_MODE = 0o700

# VDSM's rule for network (= bridge) names.
_VDSM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,14}")
_ENTRY_KEYS = frozenset({"name", "id"})
_TOP_KEYS = frozenset({"version", "networks"})


class MappingError(ValueError):
    """The mapping file, or a list of networks meant for it, is invalid."""


def is_vdsm_name(value: object) -> bool:
    """True if value is a string that follows VDSM's network name rule."""
    return isinstance(value, str) and _VDSM_NAME.fullmatch(value) is not None


def is_canonical_uuid(value: object) -> bool:
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
