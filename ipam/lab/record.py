"""What a lab is made of, kept in ``<lab dir>/lab.json`` between commands.

Every lab command takes the lab's lock first, so two commands never change one lab
at once. Whatever is about to be made (a namespace, a process) is written here
before it is made, so ``lab down`` finds it even after a crash; and the lab's name
prefixes every namespace it makes, so ``lab down`` also finds what the record
missed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_BASE = Path("/var/tmp/ovirt-ipam-lab")
_NAME = re.compile(r"[a-z][a-z0-9]{0,7}")


class LabError(Exception):
    """A lab command cannot do what was asked; the message says why and what to do."""


def check_name(name: str) -> str:
    """A lab name: 1-8 of a-z 0-9, starting with a letter. It prefixes namespace names
    ("<name>-host1") and has no '-', so "<name>-" belongs to this lab alone."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise LabError(
            f"invalid lab name {name!r}: use 1-8 characters of a-z and 0-9, starting with a letter"
        )
    return name


def lab_dir(base: Path, name: str) -> Path:
    return base / check_name(name)


def load(directory: Path) -> dict[str, Any] | None:
    path = directory / "lab.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(
            f"{path} is unreadable ({exc}); 'ovirt-ipam lab down' removes the lab"
        ) from exc


def save(directory: Path, rec: dict[str, Any]) -> None:
    """Write the record whole or not at all (temporary file, fsync, rename)."""
    path = directory / "lab.json"
    tmp = directory / ".lab.json.tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """The lab's lock, held for one command.

    The lock file sits beside the lab's directory (``lab down`` removes the directory
    while holding it) and is removed with the base directory once no lab is left, so
    a command that made nothing leaves nothing.
    """
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory.parent / f".{directory.name}.lock"
    while True:
        f = open(path, "a")  # noqa: SIM115
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise LabError(f"another lab command is working on lab {directory.name!r}") from None
        try:
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                break  # still the file at that path, not one a finishing command removed
        except FileNotFoundError:
            pass
        f.close()
    try:
        yield
    finally:
        if not directory.exists():
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.parent.rmdir()  # only when no other lab is there
        f.close()
