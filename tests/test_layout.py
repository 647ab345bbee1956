"""The architecture as the folders show it, checked: who may import whom.

The hosts run dhcp_driver/ and vdsm_verb/ and take from ipam only the bus (the
message contracts and the kombu bus), so a host never needs the engine's store,
API or DHCP manager; ipam.bus needs nothing else of ipam; the store is the IPAM
domain over the database; ipam.dhcp is the engine side of DHCP over the store and
the bus. Every import in a module counts, at its top or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("ipam", "dhcp_driver", "vdsm_verb")

# Importer (package or module) -> what of OURS it may import, besides itself. The most
# specific importer applies; a module not under any of these may import anything
# (ipam.server is the composition root, ipam.cli and ipam.lab drive everything).
ALLOWED: dict[str, tuple[str, ...]] = {
    "vdsm_verb.vdsm_plugin": (),  # runs inside VDSM on Python 3.9: stdlib only
    "dhcp_driver": ("vdsm_verb", "ipam.bus"),
    "vdsm_verb": ("dhcp_driver", "ipam.bus"),
    "ipam.bus": (),
    "ipam.store": ("ipam.bus.contracts", "ipam.db", "ipam.exceptions"),
    "ipam.dhcp": ("ipam.bus", "ipam.store", "ipam.db", "ipam.exceptions"),
    "ipam.db": ("ipam.exceptions",),
    "ipam.api": ("ipam.bus", "ipam.store", "ipam.dhcp", "ipam.exceptions"),
    "ipam.config": ("ipam.bus",),
    "ipam.exceptions": (),
    "ipam.log": (),
    "ipam.polling": (),
}


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source: str) -> list[tuple[int, str]]:
    """(line, dotted name) of everything of OURS the source imports, anywhere in it."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out += [(node.lineno, n) for n in names if n.split(".")[0] in OURS]
    return out


def violations(module: str, source: str) -> list[str]:
    rule = max((p for p in ALLOWED if under(module, p)), key=len, default=None)
    if rule is None:
        return []
    allowed = (rule, *ALLOWED[rule])
    return [
        f"{module}:{line} imports {name} ({rule} may import only {', '.join(allowed)})"
        for line, name in imported(source)
        if not any(under(name, a) for a in allowed)
    ]


def modules() -> list[Path]:
    return sorted(p for top in OURS for p in (ROOT / top).rglob("*.py"))


def test_every_module_keeps_to_its_edges() -> None:
    found = [v for p in modules() for v in violations(module_name(p), p.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("dhcp_driver.agent", "from ipam.store import Store\n"),
        ("vdsm_verb.host_service", "def f():\n    import ipam.dhcp.manager\n"),
        ("ipam.bus.messaging", "from ipam import config\n"),
        ("ipam.store.ports", "from ipam.dhcp.notifier import Notifier\n"),
        ("vdsm_verb.vdsm_plugin.network.x", "from ipam.bus import contracts\n"),
    ],
)
def test_a_forbidden_import_is_found(module: str, source: str) -> None:
    """The check itself: a host module importing the store (and the like) fails it."""
    (found,) = violations(module, source)
    assert found.startswith(f"{module}:")


def test_the_table_names_real_packages() -> None:
    """A renamed package must not leave its rule checking nothing."""
    names = {module_name(p) for p in modules()}
    for prefix in ALLOWED:
        assert any(under(n, prefix) for n in names), prefix
