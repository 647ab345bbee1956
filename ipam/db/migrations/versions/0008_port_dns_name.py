"""Ports: dns_name becomes a served attribute, unique per network among the ports that
have one (a unique index on (network_id, dns_name); NULLs are distinct).

Until now dns_name was kept, unchecked, in the port's ``extra``. Each value that is a
valid label (the rule of ipam.bus.dhcp_options.dns_label as of this revision, copied
here: a migration does what it did when it was written) and the first of its name
in its network (oldest port first) moves into the column. The others (invalid, or a
duplicate) stay in ``extra``: still shown, as before, but not served. The column and
index are added in place (no table copy on SQLite, which would drop the triggers of
0004).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ports = sa.table(
    "ports",
    sa.column("id", sa.String),
    sa.column("network_id", sa.String),
    sa.column("dns_name", sa.String),
    sa.column("extra", sa.JSON),
    sa.column("created_at", sa.String),
)
_INDEX = "ix_ports_network_id_dns_name"


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DNSMASQ_WORD = re.compile(r"[0-9]+[smhdw]?|infinite|ignore")


def _label(value: object) -> str | None:
    """The canonical label of value, or None when it is not one."""
    if not isinstance(value, str):
        return None
    label = value.lower()
    if not _LABEL.fullmatch(label) or _DNSMASQ_WORD.fullmatch(label):
        return None
    return label


def upgrade() -> None:
    op.add_column("ports", sa.Column("dns_name", sa.String(length=63), nullable=True))
    # Before the rows change: PostgreSQL refuses DDL on a table with pending (deferred)
    # trigger events, which the updates below leave (migration 0004).
    op.create_index(_INDEX, "ports", ["network_id", "dns_name"], unique=True)
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_ports.c.id, _ports.c.network_id, _ports.c.extra).order_by(
            _ports.c.created_at, _ports.c.id
        )
    ).all()
    taken: set[tuple[str, str]] = set()
    for row in rows:
        extra = dict(row.extra or {})
        if "dns_name" not in extra:
            continue
        value = extra["dns_name"]
        label = _label(value)
        if value in ("", None):
            del extra["dns_name"]  # the shown default: nothing to keep
        elif label is not None and (row.network_id, label) not in taken:
            taken.add((row.network_id, label))
            del extra["dns_name"]
        else:
            continue  # invalid or a duplicate: kept, shown, not served
        bind.execute(
            sa.update(_ports)
            .where(_ports.c.id == row.id)
            .values(extra=extra, dns_name=label if value not in ("", None) else None)
        )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_ports.c.id, _ports.c.dns_name, _ports.c.extra).where(
            _ports.c.dns_name.is_not(None)
        )
    ).all()
    for row in rows:
        extra = dict(row.extra or {}, dns_name=row.dns_name)
        bind.execute(sa.update(_ports).where(_ports.c.id == row.id).values(extra=extra))
    if bind.dialect.name == "postgresql":
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred triggers before DDL
    op.drop_index(_INDEX, table_name="ports")
    # In place on SQLite too (3.35+): a batch copy would drop the triggers of 0004.
    op.execute("ALTER TABLE ports DROP COLUMN dns_name")
